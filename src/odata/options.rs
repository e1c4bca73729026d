//! The raw query string → [`QueryOptions`]. Names and values are percent-decoded; `+` stays a
//! literal plus (api.md §7); the `$` prefix is optional and names match case-insensitively.

/// The longest `$select` list accepted (documented in docs/odata.md).
pub const MAX_SELECT_ITEMS: usize = 64;
/// The largest page a client may ask for with `$top`.
pub const MAX_TOP: u64 = 1000;

/// The query options of one request, checked for form (not yet against the model).
#[derive(Debug, Default)]
pub struct QueryOptions {
    pub select: Option<Vec<String>>,
    pub top: Option<u64>,
    pub skip: Option<u64>,
    pub count: bool,
    pub skiptoken: Option<String>,
    /// Every option pair as it arrived (still encoded), except `$skiptoken`: what a next link
    /// repeats, and what a skip token is bound to.
    pub carried: Vec<String>,
}

const SUPPORTED: [&str; 5] = ["select", "top", "skip", "count", "skiptoken"];
const UNSUPPORTED: [&str; 11] = [
    "filter",
    "orderby",
    "expand",
    "search",
    "format",
    "levels",
    "compute",
    "apply",
    "deltatoken",
    "index",
    "schemaversion",
];

/// Parses a raw query string. Errors are messages for a 400 `BadRequest`.
pub fn parse_query(raw: Option<&str>) -> Result<QueryOptions, String> {
    let mut options = QueryOptions::default();
    let mut seen: Vec<&'static str> = Vec::new();
    for pair in raw.unwrap_or("").split('&').filter(|pair| !pair.is_empty()) {
        let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = percent_decode(raw_name)?;
        let value = percent_decode(raw_value)?;
        let bare = name.strip_prefix('$').unwrap_or(&name).to_ascii_lowercase();
        let Some(option) = SUPPORTED
            .iter()
            .chain(UNSUPPORTED.iter())
            .find(|known| **known == bare)
        else {
            if name.starts_with('$') {
                return Err(format!("The query option '{name}' is not supported."));
            }
            // Custom (non-$) options are the application's own; OData ignores them.
            continue;
        };
        if seen.contains(option) {
            return Err(format!(
                "The query option '${option}' is specified more than once."
            ));
        }
        seen.push(option);
        if *option != "skiptoken" {
            options.carried.push(pair.to_string());
        }
        match *option {
            "select" => options.select = Some(parse_select(&value)?),
            "top" => {
                let top = parse_count_value("$top", &value)?;
                if !(1..=MAX_TOP).contains(&top) {
                    return Err(format!(
                        "Invalid value '{value}' for $top: the page size must be between 1 and {MAX_TOP}."
                    ));
                }
                options.top = Some(top);
            }
            "skip" => options.skip = Some(parse_count_value("$skip", &value)?),
            "count" => {
                options.count = match value.to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(format!(
                            "Invalid value '{value}' for $count: use true or false."
                        ));
                    }
                }
            }
            "skiptoken" => options.skiptoken = Some(value),
            "search" => {
                return Err("The query option '$search' is not supported on this resource.".into());
            }
            other => {
                return Err(format!(
                    "The query option '${other}' is not supported yet by this server."
                ));
            }
        }
    }
    Ok(options)
}

fn parse_select(value: &str) -> Result<Vec<String>, String> {
    let items: Vec<String> = value
        .split(',')
        .map(|item| item.trim().to_string())
        .collect();
    if items.iter().any(String::is_empty) {
        return Err("$select has an empty item; list property names separated by commas.".into());
    }
    if items.len() > MAX_SELECT_ITEMS {
        return Err(format!(
            "$select may name at most {MAX_SELECT_ITEMS} properties."
        ));
    }
    Ok(items)
}

/// A non-negative integer option value (`$top`, `$skip`).
fn parse_count_value(option: &str, value: &str) -> Result<u64, String> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "Invalid value '{value}' for {option}: a non-negative integer is required."
        ));
    }
    value
        .parse::<u64>()
        .ok()
        .filter(|number| i64::try_from(*number).is_ok())
        .ok_or_else(|| format!("Invalid value '{value}' for {option}: the number is too large."))
}

/// Strict percent-decoding: `%` must introduce two hex digits and the result must be UTF-8.
/// `+` is left as a plus, never a space.
pub fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut index = 0;
    while let Some(offset) = bytes[index..].iter().position(|b| *b == b'%') {
        let at = index + offset;
        let valid = bytes.len() >= at + 3
            && bytes[at + 1].is_ascii_hexdigit()
            && bytes[at + 2].is_ascii_hexdigit();
        if !valid {
            return Err(format!(
                "Malformed percent-encoding at position {at} of the query string part '{text}'."
            ));
        }
        index = at + 3;
    }
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| "The query string is not valid UTF-8 after percent-decoding.".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollar_is_optional_and_names_ignore_case() {
        let options = parse_query(Some("top=5&$Count=true&custom=1")).unwrap();
        assert_eq!(options.top, Some(5));
        assert!(options.count);
        assert_eq!(options.carried, vec!["top=5", "$Count=true"]);
    }

    #[test]
    fn bad_values_and_options_are_rejected() {
        for query in [
            "$top=0",
            "$top=1001",
            "$top=-1",
            "$top=1.5",
            "$skip=-3",
            "$skip=99999999999999999999",
            "$count=yes",
            "$search=x",
            "$bogus=1",
            "$top=1&top=2",
            "$select=a,,b",
            "$top=%zz",
            "$top=%C3%28",
        ] {
            assert!(parse_query(Some(query)).is_err(), "{query}");
        }
    }

    #[test]
    fn plus_stays_a_plus() {
        assert_eq!(percent_decode("a+b%2Bc").unwrap(), "a+b+c");
    }
}
