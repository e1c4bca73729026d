//! The raw query string → [`QueryOptions`]. Names and values are percent-decoded; `+` stays a
//! literal plus (api.md §7); the `$` prefix is optional and names match case-insensitively.

use crate::profile::Dollarless;

/// The longest `$select` list accepted (documented in docs/odata.md).
pub const MAX_SELECT_ITEMS: usize = 64;
/// The largest page a client may ask for with `$top`.
pub const MAX_TOP: u64 = 1000;
/// The most `$orderby` keys accepted (documented in docs/odata.md).
pub const MAX_ORDER_KEYS: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortDirection {
    Ascending,
    Descending,
}

/// One `$orderby` key as written (bound to the model by the caller).
#[derive(Clone, Debug, PartialEq)]
pub struct OrderKey {
    pub name: String,
    pub direction: SortDirection,
}

/// `$expand=policyStatusDetails[($select=…)]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Expand {
    pub name: String,
    pub select: Option<Vec<String>>,
}

/// The query options of one request, checked for form (not yet against the model).
#[derive(Debug, Default)]
pub struct QueryOptions {
    pub filter: Option<String>,
    pub orderby: Option<Vec<OrderKey>>,
    pub expand: Option<Expand>,
    pub select: Option<Vec<String>>,
    pub top: Option<u64>,
    pub skip: Option<u64>,
    pub count: bool,
    pub skiptoken: Option<String>,
    /// Every option pair as it arrived (still encoded), except `$skiptoken`: what a next link
    /// repeats, and what a skip token is bound to.
    pub carried: Vec<String>,
}

impl QueryOptions {
    /// The first option given that a resource without queryable properties (export jobs) cannot
    /// apply; `$select` it can.
    pub fn unsupported_here(&self) -> Option<&'static str> {
        [
            (self.filter.is_some(), "$filter"),
            (self.orderby.is_some(), "$orderby"),
            (self.expand.is_some(), "$expand"),
            (self.skip.is_some(), "$skip"),
            (self.count, "$count"),
        ]
        .into_iter()
        .find(|(given, _)| *given)
        .map(|(_, name)| name)
    }
}

/// Every system query option graphpilot recognises (with or without `$`). Those it cannot do
/// (`$search`, `$apply`, …) are refused below with the reason; unknown `$`-options are refused too.
const SYSTEM_OPTIONS: [&str; 16] = [
    "select",
    "top",
    "skip",
    "count",
    "skiptoken",
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

/// Parses a raw query string. Errors are messages for a 400 `BadRequest`. With `dollarless`
/// `Ignore` (v1.0's way), options written without `$` are custom options and not applied.
pub fn parse_query(raw: Option<&str>, dollarless: Dollarless) -> Result<QueryOptions, String> {
    let mut options = QueryOptions::default();
    let mut seen: Vec<&'static str> = Vec::new();
    for pair in raw.unwrap_or("").split('&').filter(|pair| !pair.is_empty()) {
        let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = percent_decode(raw_name)?;
        let value = percent_decode(raw_value)?;
        if dollarless == Dollarless::Ignore && !name.starts_with('$') {
            continue;
        }
        let bare = name.strip_prefix('$').unwrap_or(&name).to_ascii_lowercase();
        let Some(option) = SYSTEM_OPTIONS.iter().find(|known| **known == bare) else {
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
            "filter" => {
                if value.trim().is_empty() {
                    return Err(
                        "$filter is empty; give a condition such as deploymentState eq 'failure'."
                            .into(),
                    );
                }
                options.filter = Some(value);
            }
            "orderby" => options.orderby = Some(parse_orderby(&value)?),
            "expand" => options.expand = Some(parse_expand(&value)?),
            "format" => {
                let format = value.to_ascii_lowercase();
                if format != "json" && !format.starts_with("application/json") {
                    return Err(format!("$format '{value}' is not supported; only json is."));
                }
            }
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

/// `prop [asc|desc], …`. A `+` separates a name from its direction too, since form-encoding
/// clients write spaces that way.
fn parse_orderby(value: &str) -> Result<Vec<OrderKey>, String> {
    let mut keys = Vec::new();
    for item in value.split(',') {
        let words: Vec<&str> = item
            .split(|c: char| c.is_whitespace() || c == '+')
            .filter(|word| !word.is_empty())
            .collect();
        let (name, direction) = match words.as_slice() {
            [name] => (*name, SortDirection::Ascending),
            [name, direction] if direction.eq_ignore_ascii_case("asc") => {
                (*name, SortDirection::Ascending)
            }
            [name, direction] if direction.eq_ignore_ascii_case("desc") => {
                (*name, SortDirection::Descending)
            }
            _ => {
                return Err(format!(
                    "Invalid $orderby item '{}': write a property name, optionally followed by asc or desc.",
                    item.trim()
                ));
            }
        };
        keys.push(OrderKey {
            name: name.to_string(),
            direction,
        });
    }
    if keys.len() > MAX_ORDER_KEYS {
        return Err(format!(
            "$orderby may name at most {MAX_ORDER_KEYS} properties."
        ));
    }
    Ok(keys)
}

/// `name` or `name($select=a,b)`; `*` expands every navigation property.
fn parse_expand(value: &str) -> Result<Expand, String> {
    let value = value.trim();
    let (name, inner) = match value.find('(') {
        Some(open) => {
            let inner = value[open + 1..].strip_suffix(')').ok_or_else(|| {
                format!(
                    "Invalid $expand '{value}': the nested options are missing their closing ')'."
                )
            })?;
            (&value[..open], Some(inner))
        }
        None => (value, None),
    };
    if name.contains(',') {
        return Err(format!(
            "Invalid $expand '{value}': only one navigation property can be expanded here."
        ));
    }
    let mut expand = Expand {
        name: name.trim().to_string(),
        select: None,
    };
    for option in inner.into_iter().flat_map(|inner| inner.split(';')) {
        let (key, nested) = option.split_once('=').unwrap_or((option, ""));
        match key
            .trim()
            .trim_start_matches('$')
            .to_ascii_lowercase()
            .as_str()
        {
            "select" => expand.select = Some(parse_select(nested)?),
            other => {
                return Err(format!(
                    "Invalid $expand '{value}': the nested option '${other}' is not supported; only $select is."
                ));
            }
        }
    }
    Ok(expand)
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
        let options = parse_query(Some("top=5&$Count=true&custom=1"), Dollarless::Accept).unwrap();
        assert_eq!(options.top, Some(5));
        assert!(options.count);
        assert_eq!(options.carried, vec!["top=5", "$Count=true"]);
        // v1.0's way (the `dollarless` quirk): without `$`, a custom option.
        let options = parse_query(Some("top=5&$Count=true&filter=x"), Dollarless::Ignore).unwrap();
        assert_eq!(options.top, None);
        assert_eq!(options.filter, None);
        assert!(options.count);
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
            assert!(
                parse_query(Some(query), Dollarless::Accept).is_err(),
                "{query}"
            );
        }
    }

    #[test]
    fn orderby_and_expand_are_split_into_their_parts() {
        let options = parse_query(
            Some(
                "$orderby=eventDateTime%20desc,deviceId+asc,id&$expand=policyStatusDetails($select=displayName,errorCode)",
            ),
            Dollarless::Accept,
        )
        .unwrap();
        let keys = options.orderby.unwrap();
        assert_eq!(keys.len(), 3);
        assert_eq!(keys[0].direction, SortDirection::Descending);
        assert_eq!(keys[1].name, "deviceId");
        let expand = options.expand.unwrap();
        assert_eq!(expand.name, "policyStatusDetails");
        assert_eq!(expand.select.unwrap(), vec!["displayName", "errorCode"]);
    }

    #[test]
    fn plus_stays_a_plus() {
        assert_eq!(percent_decode("a+b%2Bc").unwrap(), "a+b+c");
    }
}
