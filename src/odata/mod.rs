//! OData query options (api.md §7, §8): the raw query string → typed options, and `$filter` text →
//! a predicate checked against the model. Nothing here knows about HTTP or SQL.

mod bind;
mod lexer;
mod options;
mod parser;

pub use bind::{
    Column, FilterError, ID, Operand, Predicate, Scalar, StringFunction, bind_filter,
    bind_filter_with, events_since,
};
pub use options::{
    Expand, MAX_TOP, OrderKey, QueryOptions, SortDirection, parse_query, percent_decode,
};
pub use parser::{CompareOp, parse_filter};
