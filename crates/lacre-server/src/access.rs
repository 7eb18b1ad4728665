//! Which tools a client may call.

use std::collections::HashSet;

/// A client's allow-list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolFilter {
    /// Every tool (`tools = ["*"]`).
    All,
    /// Only these.
    Only(HashSet<String>),
}

impl ToolFilter {
    /// From a configuration list, where `"*"` means all.
    pub fn from_list<S: AsRef<str>>(names: &[S]) -> ToolFilter {
        if names.iter().any(|n| n.as_ref() == "*") {
            ToolFilter::All
        } else {
            ToolFilter::Only(names.iter().map(|n| n.as_ref().to_owned()).collect())
        }
    }

    /// Whether `tool` is allowed.
    pub fn allows(&self, tool: &str) -> bool {
        match self {
            ToolFilter::All => true,
            ToolFilter::Only(set) => set.contains(tool),
        }
    }
}
