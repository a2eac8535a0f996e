//! The template language's syntax tree: what the parser (`template.rs`)
//! builds and evaluation (`eval.rs`) walks, and the [`Problem`] both
//! report. Types only, no logic.
//!
//! Promises: every offset is a byte offset into the template's text, at a
//! character boundary (`Node::Text`'s `start..end` slices it). A bad `if`
//! or `for` tag stays in the tree with `None` for its condition or list
//! (its problem is already reported), so its block still nests and the
//! rest can be evaluated for more problems; a bad `{{ expr }}` leaves no
//! node.

use super::formatters::Op;
use super::values::Fact;

/// A problem at a byte offset of the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    /// Byte offset of the problem in the template text.
    pub offset: usize,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// What an expression starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Primary {
    /// An environment variable (or its `_FILE`).
    Env(String),
    /// `secrets.NAME`.
    Secret(String),
    /// `container.FACT`.
    Fact(Fact),
    /// A quoted string.
    Str(String),
    /// The variable of the `for` loop at this depth (0 = outermost), and its
    /// name.
    Item(usize, String),
}

/// A formatter and where its name is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Filter {
    pub op: Op,
    pub offset: usize,
}

/// `primary | filter | ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Expr {
    pub primary: Primary,
    pub offset: usize,
    pub filters: Vec<Filter>,
}

/// `if [not] PRIMARY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cond {
    pub primary: Primary,
    pub offset: usize,
    pub negate: bool,
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    /// Text copied as is: `src[start..end]`.
    Text { start: usize, end: usize },
    /// `{{ expr }}`: its value is copied.
    Value { expr: Expr },
    /// `{{ if }}`: `then` or `otherwise`, as the condition says. `cond` is
    /// `None` when the tag was bad (a problem was reported).
    If {
        cond: Option<Cond>,
        then: Vec<Node>,
        otherwise: Vec<Node>,
    },
    /// `{{ for }}`: `body` once per item of the source's list. `source` is
    /// `None` when the tag was bad (a problem was reported).
    For {
        source: Option<Expr>,
        body: Vec<Node>,
    },
}

/// A parsed template.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub nodes: Vec<Node>,
}
