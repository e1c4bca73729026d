//! OData query options (api.md §7, §8): parsing the raw query string into typed options. Nothing
//! here knows about HTTP or SQL.

mod options;

pub use options::{MAX_TOP, QueryOptions, parse_query, percent_decode};
