//! `$filter` tokens → syntax tree, by precedence climbing. Precedence, loosest first (OData §5.1.1):
//! `or`, `and`, `not`, then the comparisons `eq ne gt ge lt le has in`, then primaries.

use super::lexer::{Spanned, SyntaxError, Token, tokenize};
use crate::edm::{DateTimeOffset, Duration};

/// The deepest nesting of parentheses and `not` accepted (api.md §14).
pub const MAX_DEPTH: usize = 100;
/// The most terms (comparisons, function calls, `in` items) accepted (api.md §14).
pub const MAX_TERMS: usize = 1000;

#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    Null,
    Boolean(bool),
    Integer(i64),
    String(String),
    DateTimeOffset(DateTimeOffset),
    Duration(Duration),
    /// A type-qualified string: `microsoft.graph.enrollmentState'failed'`.
    Typed(String, String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CompareOp {
    fn from_word(word: &str) -> Option<Self> {
        Some(match word {
            "eq" => CompareOp::Eq,
            "ne" => CompareOp::Ne,
            "gt" => CompareOp::Gt,
            "ge" => CompareOp::Ge,
            "lt" => CompareOp::Lt,
            "le" => CompareOp::Le,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Ast {
    Literal(Literal, usize),
    /// A property path as written (possibly type-cast: `ns.Type/prop`).
    Property(String, usize),
    Compare(CompareOp, Box<Ast>, Box<Ast>, usize),
    Has(Box<Ast>, Box<Ast>, usize),
    In(Box<Ast>, Vec<Ast>, usize),
    And(Box<Ast>, Box<Ast>),
    Or(Box<Ast>, Box<Ast>),
    Not(Box<Ast>, usize),
    Call(String, Vec<Ast>, usize),
}

impl Ast {
    pub fn position(&self) -> usize {
        match self {
            Ast::Literal(_, p)
            | Ast::Property(_, p)
            | Ast::Compare(.., p)
            | Ast::Has(.., p)
            | Ast::In(.., p)
            | Ast::Not(_, p)
            | Ast::Call(.., p) => *p,
            Ast::And(left, _) | Ast::Or(left, _) => left.position(),
        }
    }
}

pub fn parse_filter(text: &str) -> Result<Ast, SyntaxError> {
    let tokens = tokenize(text)?;
    if tokens.is_empty() {
        return Err(SyntaxError::new(0, "the expression is empty"));
    }
    let mut parser = Parser {
        tokens,
        index: 0,
        depth: 0,
        terms: 0,
        end: text.len(),
    };
    let ast = parser.or()?;
    if let Some(extra) = parser.peek() {
        return Err(SyntaxError::new(
            extra.position,
            format!(
                "unexpected {} after a complete expression",
                describe(&extra.token)
            ),
        ));
    }
    Ok(ast)
}

struct Parser {
    tokens: Vec<Spanned>,
    index: usize,
    depth: usize,
    terms: usize,
    end: usize,
}

fn describe(token: &Token) -> String {
    match token {
        Token::Word(word) => format!("'{word}'"),
        Token::String(text) => format!("string '{text}'"),
        Token::Integer(n) => format!("number {n}"),
        Token::DateTimeOffset(value) => format!("DateTimeOffset {value}"),
        Token::Duration(value) => format!("duration {value}"),
        Token::TypedString(kind, value) => format!("{kind}'{value}'"),
        Token::Open => "'('".into(),
        Token::Close => "')'".into(),
        Token::Comma => "','".into(),
        Token::Slash => "'/'".into(),
    }
}

impl Parser {
    fn peek(&self) -> Option<&Spanned> {
        self.tokens.get(self.index)
    }

    fn peek_word(&self) -> Option<&str> {
        match self.peek() {
            Some(Spanned {
                token: Token::Word(word),
                ..
            }) => Some(word),
            _ => None,
        }
    }

    fn next(&mut self, expected: &str) -> Result<Spanned, SyntaxError> {
        let token = self.tokens.get(self.index).cloned().ok_or_else(|| {
            SyntaxError::new(
                self.end,
                format!("the expression ends where {expected} was expected"),
            )
        })?;
        self.index += 1;
        Ok(token)
    }

    fn expect(&mut self, wanted: Token, expected: &str) -> Result<usize, SyntaxError> {
        let found = self.next(expected)?;
        if found.token == wanted {
            Ok(found.position)
        } else {
            Err(SyntaxError::new(
                found.position,
                format!("expected {expected}, found {}", describe(&found.token)),
            ))
        }
    }

    fn nest(&mut self, position: usize) -> Result<(), SyntaxError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(SyntaxError::new(
                position,
                format!("the expression is nested deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    fn count_term(&mut self, position: usize) -> Result<(), SyntaxError> {
        self.terms += 1;
        if self.terms > MAX_TERMS {
            return Err(SyntaxError::new(
                position,
                format!("the expression has more than {MAX_TERMS} terms"),
            ));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Ast, SyntaxError> {
        let mut left = self.and()?;
        while self.peek_word() == Some("or") {
            self.index += 1;
            let right = self.and()?;
            left = Ast::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Ast, SyntaxError> {
        let mut left = self.unary()?;
        while self.peek_word() == Some("and") {
            self.index += 1;
            let right = self.unary()?;
            left = Ast::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Ast, SyntaxError> {
        if self.peek_word() == Some("not") {
            let position = self.next("not")?.position;
            self.nest(position)?;
            let operand = self.unary()?;
            self.depth -= 1;
            return Ok(Ast::Not(Box::new(operand), position));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Ast, SyntaxError> {
        let left = self.primary()?;
        let Some(word) = self.peek_word().map(str::to_string) else {
            return Ok(left);
        };
        let position = self.peek().map(|t| t.position).unwrap_or(self.end);
        if let Some(op) = CompareOp::from_word(&word) {
            self.index += 1;
            self.count_term(position)?;
            let right = self.primary()?;
            return Ok(Ast::Compare(op, Box::new(left), Box::new(right), position));
        }
        match word.as_str() {
            "has" => {
                self.index += 1;
                self.count_term(position)?;
                let right = self.primary()?;
                Ok(Ast::Has(Box::new(left), Box::new(right), position))
            }
            "in" => {
                self.index += 1;
                self.expect(Token::Open, "'(' after 'in'")?;
                let mut items = Vec::new();
                loop {
                    let item = self.primary()?;
                    self.count_term(item.position())?;
                    items.push(item);
                    let separator = self.next("',' or ')'")?;
                    match separator.token {
                        Token::Comma => continue,
                        Token::Close => break,
                        other => {
                            return Err(SyntaxError::new(
                                separator.position,
                                format!(
                                    "expected ',' or ')' in the 'in' list, found {}",
                                    describe(&other)
                                ),
                            ));
                        }
                    }
                }
                Ok(Ast::In(Box::new(left), items, position))
            }
            "eq" | "and" | "or" | "not" => Ok(left),
            other if ["add", "sub", "mul", "div", "divby", "mod"].contains(&other) => {
                Err(SyntaxError::new(
                    position,
                    format!("arithmetic operator '{other}' is not supported"),
                ))
            }
            // Upper-case operators are a common slip: say so.
            other
                if CompareOp::from_word(&other.to_ascii_lowercase()).is_some()
                    || ["AND", "OR", "NOT", "HAS", "IN"].contains(&other) =>
            {
                Err(SyntaxError::new(
                    position,
                    format!(
                        "operators are lower case: write '{}'",
                        other.to_ascii_lowercase()
                    ),
                ))
            }
            _ => Ok(left),
        }
    }

    fn primary(&mut self) -> Result<Ast, SyntaxError> {
        let token = self.next("a property, literal or '('")?;
        let position = token.position;
        Ok(match token.token {
            Token::Open => {
                self.nest(position)?;
                let inner = self.or()?;
                self.depth -= 1;
                self.expect(Token::Close, "')'")?;
                inner
            }
            Token::String(text) => Ast::Literal(Literal::String(text), position),
            Token::Integer(number) => Ast::Literal(Literal::Integer(number), position),
            Token::DateTimeOffset(value) => Ast::Literal(Literal::DateTimeOffset(value), position),
            Token::Duration(value) => Ast::Literal(Literal::Duration(value), position),
            Token::TypedString(kind, value) => Ast::Literal(Literal::Typed(kind, value), position),
            Token::Word(word) => match word.as_str() {
                "null" => Ast::Literal(Literal::Null, position),
                "true" => Ast::Literal(Literal::Boolean(true), position),
                "false" => Ast::Literal(Literal::Boolean(false), position),
                _ if matches!(self.peek().map(|t| &t.token), Some(Token::Open)) => {
                    self.index += 1;
                    self.count_term(position)?;
                    let mut arguments = Vec::new();
                    if matches!(self.peek().map(|t| &t.token), Some(Token::Close)) {
                        self.index += 1;
                    } else {
                        loop {
                            arguments.push(self.or()?);
                            let separator = self.next("',' or ')'")?;
                            match separator.token {
                                Token::Comma => continue,
                                Token::Close => break,
                                other => {
                                    return Err(SyntaxError::new(
                                        separator.position,
                                        format!(
                                            "expected ',' or ')' after a function argument, found {}",
                                            describe(&other)
                                        ),
                                    ));
                                }
                            }
                        }
                    }
                    Ast::Call(word, arguments, position)
                }
                _ => {
                    let mut path = word;
                    while matches!(self.peek().map(|t| &t.token), Some(Token::Slash)) {
                        self.index += 1;
                        match self.next("a property name after '/'")?.token {
                            Token::Word(segment) => {
                                path.push('/');
                                path.push_str(&segment);
                            }
                            other => {
                                return Err(SyntaxError::new(
                                    position,
                                    format!(
                                        "expected a property name after '/', found {}",
                                        describe(&other)
                                    ),
                                ));
                            }
                        }
                    }
                    Ast::Property(path, position)
                }
            },
            other => {
                return Err(SyntaxError::new(
                    position,
                    format!(
                        "expected a property, literal or '(', found {}",
                        describe(&other)
                    ),
                ));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    /// The filter side of `fuzz_crash_91525e04` (see edm::duration): a duration literal with
    /// huge seconds is refused, not overflowed.
    #[test]
    fn fuzz_crash_91525e04_a_huge_duration_literal_is_refused() {
        assert!(
            crate::odata::parse_filter("deplol duration'00:00:08999999999999999999.9'").is_err()
        );
    }

    use super::*;

    fn property(name: &str, position: usize) -> Box<Ast> {
        Box::new(Ast::Property(name.into(), position))
    }

    #[test]
    fn and_binds_tighter_than_or_and_not_tighter_than_and() {
        let ast = parse_filter("not a eq 1 or b eq 2 and c eq 3").unwrap();
        let Ast::Or(left, right) = ast else {
            panic!("or at the top")
        };
        assert!(matches!(*left, Ast::Not(..)));
        assert!(matches!(*right, Ast::And(..)));
    }

    #[test]
    fn in_lists_type_casts_and_calls() {
        let ast = parse_filter("deploymentState in ('success', 'failure')").unwrap();
        let Ast::In(left, items, 16) = ast else {
            panic!("{ast:?}")
        };
        assert_eq!(left, property("deploymentState", 0));
        assert_eq!(items.len(), 2);
        let ast = parse_filter(
            "microsoft.graph.deviceManagementAutopilotEvent/eventDateTime ge 2021-01-01T00:00:00Z",
        )
        .unwrap();
        let Ast::Compare(CompareOp::Ge, left, _, _) = ast else {
            panic!()
        };
        assert_eq!(
            left,
            property(
                "microsoft.graph.deviceManagementAutopilotEvent/eventDateTime",
                0
            )
        );
        let ast = parse_filter("startswith(deviceSerialNumber, 'SN')").unwrap();
        assert!(matches!(ast, Ast::Call(name, args, 0) if name == "startswith" && args.len() == 2));
    }

    #[test]
    fn syntax_errors_say_where() {
        for (text, position, fragment) in [
            ("", 0, "empty"),
            ("a eq", 4, "ends where"),
            ("a eq 1 b", 7, "after a complete expression"),
            ("(a eq 1", 7, "ends where ')'"),
            ("a in (1 2)", 8, "expected ',' or ')'"),
            ("a EQ 1", 2, "lower case"),
            ("a add 1 eq 2", 2, "arithmetic"),
            ("a eq ,", 5, "found ','"),
        ] {
            let error = parse_filter(text).unwrap_err();
            assert_eq!(error.position, position, "{text}: {}", error.message);
            assert!(
                error.message.contains(fragment),
                "{text}: {}",
                error.message
            );
        }
    }

    #[test]
    fn depth_and_term_limits_hold_without_overflowing_the_stack() {
        let deep = format!("{}a eq 1{}", "(".repeat(101), ")".repeat(101));
        assert!(
            parse_filter(&deep)
                .unwrap_err()
                .message
                .contains("nested deeper")
        );
        let nots = format!("{}a eq 1", "not ".repeat(101));
        assert!(
            parse_filter(&nots)
                .unwrap_err()
                .message
                .contains("nested deeper")
        );
        let ok = format!("{}a eq 1{}", "(".repeat(100), ")".repeat(100));
        assert!(parse_filter(&ok).is_ok());
        let many = vec!["a eq 1"; 1001].join(" or ");
        assert!(
            parse_filter(&many)
                .unwrap_err()
                .message
                .contains("more than 1000")
        );
        let enough = vec!["a eq 1"; 1000].join(" or ");
        assert!(parse_filter(&enough).is_ok());
        let huge = format!("{}a eq 1{}", "(".repeat(100_000), ")".repeat(100_000));
        assert!(parse_filter(&huge).is_err());
    }
}
