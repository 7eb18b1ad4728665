//! Which tools a client may call.

use std::collections::HashSet;

/// A client's allow-list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolFilter {
    /// Every tool (`tools = ["*"]`).
    All,
    /// Only these names, and the names matching these patterns.
    Only {
        /// Names allowed exactly.
        names: HashSet<String>,
        /// Patterns (`*` any run of characters, `?` one character).
        globs: Vec<String>,
    },
}

impl ToolFilter {
    /// From a configuration list, where `"*"` means all and a name with
    /// `*` or `?` is a pattern (`"everything_*"`).
    pub fn from_list<S: AsRef<str>>(names: &[S]) -> ToolFilter {
        if names.iter().any(|n| n.as_ref() == "*") {
            return ToolFilter::All;
        }
        let (globs, exact): (Vec<&str>, Vec<&str>) =
            names.iter().map(AsRef::as_ref).partition(|n| is_pattern(n));
        ToolFilter::Only {
            names: exact.into_iter().map(str::to_owned).collect(),
            globs: globs.into_iter().map(str::to_owned).collect(),
        }
    }

    /// Whether `tool` is allowed.
    pub fn allows(&self, tool: &str) -> bool {
        match self {
            ToolFilter::All => true,
            ToolFilter::Only { names, globs } => {
                names.contains(tool) || globs.iter().any(|g| glob_match(g, tool))
            }
        }
    }
}

/// Whether a configured name is a pattern.
pub fn is_pattern(name: &str) -> bool {
    name.contains(['*', '?'])
}

/// Matches `text` against `pattern`, where `*` stands for any run of
/// characters (none included) and `?` for exactly one; every other
/// character stands for itself. Linear in practice: the classic
/// backtrack-to-the-last-star algorithm, no recursion.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || Some(&c) == t.get(ti) => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|&c| c == '*'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_documented() {
        assert!(glob_match("everything_*", "everything_echo"));
        assert!(glob_match("everything_*", "everything_"));
        assert!(!glob_match("everything_*", "everythin_echo"));
        assert!(glob_match("get-*", "get-sum"));
        assert!(glob_match("*-sum", "get-sum"));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
        assert!(glob_match("?cho", "echo"));
        assert!(!glob_match("?cho", "cho"));
        assert!(glob_match("**", ""));
        assert!(!glob_match("echo", "echo2"));
        assert!(glob_match("é*", "échec"));
    }

    #[test]
    fn allow_lists_mix_names_and_patterns() {
        let f = ToolFilter::from_list(&["everything_*", "word_count"]);
        assert!(f.allows("everything_echo"));
        assert!(f.allows("word_count"));
        assert!(!f.allows("word_count2"));
        assert!(!f.allows("batch_sum"));
        assert_eq!(ToolFilter::from_list(&["x", "*"]), ToolFilter::All);
    }
}
