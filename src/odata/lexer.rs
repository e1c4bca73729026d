//! `$filter` text → tokens, each with its byte position for error messages.

use crate::edm::{DateTimeOffset, Duration, Seconds};

#[derive(Clone, Debug, PartialEq)]
pub enum Token {
    /// A name: property, keyword operator (`eq`, `and`…), function, or qualified path segment.
    Word(String),
    /// `'text'` with `''` unescaped.
    String(String),
    Integer(i64),
    DateTimeOffset(DateTimeOffset),
    /// `duration'PT5M'`.
    Duration(Duration),
    /// `microsoft.graph.someEnum'member'`: the qualified type name and the member.
    TypedString(String, String),
    Open,
    Close,
    Comma,
    Slash,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Spanned {
    pub token: Token,
    pub position: usize,
}

/// A syntax error with the position where it was found.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntaxError {
    pub position: usize,
    pub message: String,
}

impl SyntaxError {
    pub fn new(position: usize, message: impl Into<String>) -> Self {
        Self {
            position,
            message: message.into(),
        }
    }
}

pub fn tokenize(text: &str) -> Result<Vec<Spanned>, SyntaxError> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut index = 0;
    while index < bytes.len() {
        let start = index;
        let byte = bytes[index];
        let token = match byte {
            b' ' | b'\t' | b'\r' | b'\n' => {
                index += 1;
                continue;
            }
            b'(' => {
                index += 1;
                Token::Open
            }
            b')' => {
                index += 1;
                Token::Close
            }
            b',' => {
                index += 1;
                Token::Comma
            }
            b'/' => {
                index += 1;
                Token::Slash
            }
            b'\'' => {
                let (value, end) = quoted(text, index)?;
                index = end;
                Token::String(value)
            }
            b'0'..=b'9' | b'-' => {
                let end = index
                    + text[index..]
                        .find(|c: char| !(c.is_ascii_alphanumeric() || "-:.+".contains(c)))
                        .unwrap_or(text.len() - index);
                let literal = &text[index..end];
                index = end;
                number_or_datetime(literal, start)?
            }
            b if b.is_ascii_alphabetic() || b == b'_' || b == b'$' => {
                let end = index
                    + text[index..]
                        .find(|c: char| {
                            !(c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '$')
                        })
                        .unwrap_or(text.len() - index);
                let word = &text[index..end];
                index = end;
                if bytes.get(index) == Some(&b'\'') {
                    let (value, end) = quoted(text, index)?;
                    index = end;
                    if word.eq_ignore_ascii_case("duration") {
                        Token::Duration(Duration::parse(&value).map_err(|reason| {
                            SyntaxError::new(start, format!("invalid duration literal: {reason}"))
                        })?)
                    } else {
                        Token::TypedString(word.to_string(), value)
                    }
                } else {
                    Token::Word(word.to_string())
                }
            }
            _ => {
                let found = text[index..].chars().next().unwrap_or('?');
                return Err(SyntaxError::new(
                    start,
                    format!("unexpected character '{found}'"),
                ));
            }
        };
        tokens.push(Spanned {
            token,
            position: start,
        });
    }
    Ok(tokens)
}

/// A quoted string starting at `start` (the opening quote); returns the value and the index after
/// the closing quote.
fn quoted(text: &str, start: usize) -> Result<(String, usize), SyntaxError> {
    let bytes = text.as_bytes();
    let mut value = String::new();
    let mut index = start + 1;
    let mut run = index;
    loop {
        match bytes.get(index) {
            None => return Err(SyntaxError::new(start, "unterminated string literal")),
            Some(b'\'') if bytes.get(index + 1) == Some(&b'\'') => {
                value.push_str(&text[run..=index]);
                index += 2;
                run = index;
            }
            Some(b'\'') => {
                value.push_str(&text[run..index]);
                return Ok((value, index + 1));
            }
            // No stored string holds NUL (bodies refuse it; PostgreSQL text cannot hold it).
            Some(0) => {
                return Err(SyntaxError::new(
                    index,
                    "string literals cannot contain the NUL character (%00)",
                ));
            }
            Some(_) => index += 1,
        }
    }
}

fn number_or_datetime(literal: &str, position: usize) -> Result<Token, SyntaxError> {
    let digits = literal.strip_prefix('-').unwrap_or(literal);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return literal.parse().map(Token::Integer).map_err(|_| {
            SyntaxError::new(position, format!("the integer {literal} is out of range"))
        });
    }
    if literal.len() >= 10 && literal.as_bytes()[4] == b'-' && literal.contains('T') {
        return DateTimeOffset::parse(literal, Seconds::Optional)
            .map(Token::DateTimeOffset)
            .map_err(|reason| {
                SyntaxError::new(
                    position,
                    format!("invalid DateTimeOffset literal '{literal}': {reason}"),
                )
            });
    }
    if literal.len() == 10 && literal.as_bytes()[4] == b'-' {
        return Err(SyntaxError::new(
            position,
            format!(
                "'{literal}' is a date; compare DateTimeOffset properties with a full value such as {literal}T00:00:00Z"
            ),
        ));
    }
    Err(SyntaxError::new(
        position,
        format!("'{literal}' is not a valid literal (only integers, not decimals, are supported)"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<Token> {
        tokenize(text)
            .unwrap()
            .into_iter()
            .map(|t| t.token)
            .collect()
    }

    #[test]
    fn literals_of_every_form() {
        assert_eq!(
            kinds("deviceId eq 'it''s' and errorCode lt -5"),
            vec![
                Token::Word("deviceId".into()),
                Token::Word("eq".into()),
                Token::String("it's".into()),
                Token::Word("and".into()),
                Token::Word("errorCode".into()),
                Token::Word("lt".into()),
                Token::Integer(-5),
            ]
        );
        let tokens = kinds("eventDateTime ge 2021-03-01T00:00+01:00");
        assert_eq!(
            tokens[2].clone(),
            Token::DateTimeOffset(
                DateTimeOffset::parse("2021-02-28T23:00:00Z", Seconds::Required).unwrap()
            )
        );
        assert_eq!(
            kinds("duration'PT5M'"),
            vec![Token::Duration(Duration::parse("PT5M").unwrap())]
        );
        assert_eq!(
            kinds("microsoft.graph.enrollmentState'failed'"),
            vec![Token::TypedString(
                "microsoft.graph.enrollmentState".into(),
                "failed".into()
            )]
        );
    }

    #[test]
    fn errors_carry_their_position() {
        for (text, position, fragment) in [
            ("deviceId eq 'open", 12, "unterminated"),
            ("x eq 1.5", 5, "decimals"),
            ("x eq 2021-13-01T00:00:00Z", 5, "DateTimeOffset"),
            ("x eq 2021-03-01", 5, "is a date"),
            ("x eq duration'P1Y'", 5, "duration"),
            ("x eq #", 5, "unexpected character"),
            ("x eq 99999999999999999999", 5, "out of range"),
        ] {
            let error = tokenize(text).unwrap_err();
            assert_eq!(error.position, position, "{text}");
            assert!(
                error.message.contains(fragment),
                "{text}: {}",
                error.message
            );
        }
    }
}
