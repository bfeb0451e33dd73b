//! Label and field selectors: parsing the query-string syntax kubectl and client
//! libraries send, converting `metav1.LabelSelector` objects, and matching.

mod fields;
mod labels;

pub use fields::{FieldOperator, FieldRequirement, FieldSelector};
pub use labels::{LabelSelector, Operator, Requirement};

/// A selector that could not be parsed or converted. The text follows the
/// wording of Kubernetes' own parsers, so clients see familiar messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// A label selector requirement was malformed or had an invalid key or value.
    #[error("unable to parse requirement: {0}")]
    Requirement(String),
    /// The label selector's token stream was not of the expected shape.
    #[error("{0}")]
    Syntax(String),
    /// A `matchExpressions` entry used an operator Kubernetes does not know.
    #[error("{0:?} is not a valid label selector operator")]
    InvalidOperator(String),
    /// A `metav1.LabelSelector` object was not of the documented shape.
    #[error("invalid label selector: {0}")]
    Malformed(String),
    /// A field selector term had none of `=`, `==` or `!=`.
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    FieldTerm { selector: String, term: String },
    /// A field selector value used a backslash before a character other than `\`, `,` or `=`.
    #[error("invalid field selector: invalid escape sequence: {0}")]
    InvalidEscape(String),
    /// A field selector value contained an unescaped `,` or `=`.
    #[error("invalid field selector: unescaped character in value: {0}")]
    UnescapedRune(char),
}

pub use fields::{escape_value, unescape_value};

#[cfg(test)]
mod tests;
