//! Tools from elsewhere, as configured: `[[tools]]` (commands) and
//! `[[mcp_servers]]` (MCP servers), checked into plain data that
//! `lacre-gateway` runs. Nothing here starts a process.

use super::file::{CommandToolSpec, McpServerSpec};
use super::{ConfigError, Ctx};
use crate::schema::ArgsSchema;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// Default time an immediate command or upstream call may take.
pub const DEFAULT_CALL_TIMEOUT_MS: u64 = 30_000;
/// Default time a long-running command may take.
pub const DEFAULT_JOB_TIMEOUT_MS: u64 = 3_600_000;
/// Default cap on a command's stdout.
pub const DEFAULT_MAX_OUTPUT_BYTES: usize = 1 << 20;

/// The environment a child process gets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChildEnv {
    /// Variables set for the child (over PATH and HOME).
    pub vars: BTreeMap<String, String>,
    /// Whether the server's whole environment is passed on; when false the
    /// child sees only PATH, HOME and `vars`.
    pub inherit: bool,
}

/// A program to run: where it is, with what, from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildCommand {
    /// The program (a bare name is looked up in PATH).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Its working directory: the configuration file's directory.
    pub cwd: PathBuf,
    /// Its environment.
    pub env: ChildEnv,
}

/// A `[[tools]]` entry, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandTool {
    /// The tool's name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// What to run.
    pub command: ChildCommand,
    /// JSON Schema of the arguments (compiled once already: it is valid).
    pub args_schema: serde_json::Value,
    /// Runs as a job.
    pub long_running: bool,
    /// Time the command may run.
    pub timeout: Duration,
    /// Most bytes of stdout.
    pub max_output_bytes: usize,
}

/// How a job whose worker or upstream was lost is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryPolicy {
    /// Run again only tools the upstream annotates `idempotentHint` or
    /// `readOnlyHint`; fail the others.
    Idempotent,
    /// Always run again.
    Always,
    /// Never run again: the job fails.
    Never,
}

/// How an MCP upstream is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum McpTransport {
    /// A child process speaking MCP on stdin/stdout.
    Stdio(ChildCommand),
    /// A Streamable HTTP endpoint, with headers whose values come from
    /// environment variables (name → variable).
    Http {
        /// The endpoint.
        url: String,
        /// Header name → environment variable.
        headers_env: BTreeMap<String, String>,
    },
}

/// A `[[mcp_servers]]` entry, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct McpServer {
    /// The upstream's name.
    pub name: String,
    /// How to reach it.
    pub transport: McpTransport,
    /// Prepended to its tools' names.
    pub prefix: String,
    /// Which upstream tools to offer (`None`: all); names or patterns.
    pub tools: Option<Vec<String>>,
    /// Upstream tools that run as jobs; names or patterns.
    pub long_running: Vec<String>,
    /// Time an immediate call may take.
    pub call_timeout: Duration,
    /// Whether a lost job runs again.
    pub retry: RetryPolicy,
}

fn line(ctx: &Ctx, span: std::ops::Range<usize>) -> Option<usize> {
    Some(ctx.line_of(span.start))
}

/// A table of entries with names: `[[tools]]` or `[[mcp_servers]]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Named {
    /// What an entry is, in messages ("tool", "mcp server").
    pub what: &'static str,
    /// The table's name in the file.
    pub table: &'static str,
}

/// The `[[tools]]` table.
pub(crate) const TOOLS: Named = Named {
    what: "tool",
    table: "tools",
};

/// The `[[mcp_servers]]` table.
pub(crate) const MCP_SERVERS: Named = Named {
    what: "mcp server",
    table: "mcp_servers",
};

/// The checked name of an entry of `table`, which no earlier entry in
/// `seen` has.
fn unique_name(
    ctx: &Ctx,
    name: &Spanned<String>,
    Named { what, table }: Named,
    seen: &mut std::collections::HashSet<String>,
) -> Result<String, ConfigError> {
    let n = tool_name(ctx, name, what)?;
    if !seen.insert(n.clone()) {
        return Err(ctx.err(
            line(ctx, name.span()),
            format!("{what} {n:?} is defined twice"),
            format!("give each [[{table}]] table its own name"),
        ));
    }
    Ok(n)
}

fn tool_name(ctx: &Ctx, name: &Spanned<String>, what: &str) -> Result<String, ConfigError> {
    let n = name.get_ref();
    if n.is_empty()
        || n.chars().count() > lacre_proto::MAX_ID_CHARS
        || n.chars().any(char::is_control)
    {
        return Err(ctx.err(
            line(ctx, name.span()),
            format!("{what} name {n:?} must be 1 to 128 characters without control characters"),
            "use a name such as \"word_count\"",
        ));
    }
    Ok(n.clone())
}

fn child_command(
    ctx: &Ctx,
    command: &Spanned<Vec<String>>,
    env: Option<&BTreeMap<String, String>>,
    inherit: Option<bool>,
) -> Result<ChildCommand, ConfigError> {
    let Some((program, args)) = command
        .get_ref()
        .split_first()
        .filter(|(p, _)| !p.is_empty())
    else {
        return Err(ctx.err(
            line(ctx, command.span()),
            "command is empty",
            "give the program and its arguments, e.g. command = [\"python3\", \"tools/word_count.py\"]",
        ));
    };
    let base = ctx.base_dir();
    let cwd = std::path::absolute(if base.as_os_str().is_empty() {
        Path::new(".")
    } else {
        &base
    })
    .unwrap_or(base);
    // A relative path with a directory part is the config file's
    // neighbour; a bare name is looked up in PATH.
    let program = if program.contains('/') && Path::new(program).is_relative() {
        cwd.join(program)
    } else {
        PathBuf::from(program)
    };
    Ok(ChildCommand {
        program,
        args: args.to_vec(),
        cwd,
        env: ChildEnv {
            vars: env.cloned().unwrap_or_default(),
            inherit: inherit.unwrap_or(false),
        },
    })
}

/// The checked entries of `table`: each checked by `one` under its name,
/// no name twice.
pub(crate) fn each_named<S, T>(
    ctx: &Ctx,
    specs: &[S],
    table: Named,
    name: impl Fn(&S) -> &Spanned<String>,
    one: impl Fn(&Ctx, &S, String) -> Result<T, ConfigError>,
) -> Result<Vec<T>, ConfigError> {
    let mut seen = std::collections::HashSet::new();
    specs
        .iter()
        .map(|s| one(ctx, s, unique_name(ctx, name(s), table, &mut seen)?))
        .collect()
}

/// One `[[tools]]` entry, named `name`.
pub(crate) fn command_tool(
    ctx: &Ctx,
    t: &CommandToolSpec,
    name: String,
) -> Result<CommandTool, ConfigError> {
    let command = child_command(ctx, &t.command, t.env.as_ref(), t.inherit_env)?;
    let args_schema = schema(ctx, t, &name)?;
    let long_running = t.long_running.unwrap_or(false);
    let default_timeout = if long_running {
        DEFAULT_JOB_TIMEOUT_MS
    } else {
        DEFAULT_CALL_TIMEOUT_MS
    };
    Ok(CommandTool {
        description: t.description.clone().unwrap_or_default(),
        name,
        command,
        args_schema,
        long_running,
        timeout: Duration::from_millis(t.timeout_ms.unwrap_or(default_timeout).max(1)),
        max_output_bytes: t
            .max_output_bytes
            .unwrap_or(DEFAULT_MAX_OUTPUT_BYTES)
            .max(2),
    })
}

/// A command tool's schema: inline, from a file, or (neither given) an
/// object with no members, so that a tool declared without a schema takes
/// no arguments rather than any.
fn schema(ctx: &Ctx, t: &CommandToolSpec, name: &str) -> Result<serde_json::Value, ConfigError> {
    let at = t
        .args_schema
        .as_ref()
        .map(Spanned::span)
        .or_else(|| t.args_schema_file.as_ref().map(Spanned::span))
        .unwrap_or_else(|| t.name.span());
    let value = match (&t.args_schema, &t.args_schema_file) {
        (Some(_), Some(f)) => {
            return Err(ctx.err(
                line(ctx, f.span()),
                format!("tool {name:?} has both args_schema and args_schema_file"),
                "keep one of them",
            ))
        }
        (Some(inline), None) => serde_json::to_value(inline.get_ref())
            .map_err(|e| ctx.err(line(ctx, inline.span()), format!("args_schema: {e}"), ""))?,
        (None, Some(file)) => {
            let path = ctx.base_dir().join(file.get_ref());
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ctx.err(
                    line(ctx, file.span()),
                    format!("cannot read {}: {e}", path.display()),
                    "the path is relative to this configuration file",
                )
            })?;
            serde_json::from_str(&text).map_err(|e| {
                ctx.err(
                    line(ctx, file.span()),
                    format!("{} is not JSON: {e}", path.display()),
                    "",
                )
            })?
        }
        (None, None) => serde_json::json!({
            "type": "object", "properties": {}, "additionalProperties": false
        }),
    };
    ArgsSchema::compile(name, &value).map_err(|e| {
        ctx.err(
            line(ctx, at),
            format!("tool {name:?}: {e}"),
            "give a JSON Schema for an object",
        )
    })?;
    Ok(value)
}

/// One `[[mcp_servers]]` entry, named `name`.
pub(crate) fn mcp_server(
    ctx: &Ctx,
    m: &McpServerSpec,
    name: String,
) -> Result<McpServer, ConfigError> {
    let at = line(ctx, m.name.span());
    let transport = match (&m.command, &m.url) {
        (Some(c), None) => McpTransport::Stdio(child_command(
            ctx,
            c,
            m.env.as_ref(),
            m.inherit_env,
        )?),
        (None, Some(url)) => {
            let u = url.get_ref();
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(ctx.err(
                    line(ctx, url.span()),
                    format!("url = {u:?} is not an http(s) URL"),
                    "write the Streamable HTTP endpoint, e.g. \"http://127.0.0.1:9000/mcp\"",
                ));
            }
            McpTransport::Http {
                url: u.clone(),
                headers_env: m.headers_env.clone().unwrap_or_default(),
            }
        }
        _ => {
            return Err(ctx.err(
                at,
                format!("mcp server {name:?} needs exactly one of command and url"),
                "command = [\"npx\", \"-y\", \"some-mcp-server\"] for a child process, url = \"http://...\" for Streamable HTTP",
            ))
        }
    };
    let retry = match m.retry_on_lost_worker.as_ref() {
        None => RetryPolicy::Idempotent,
        Some(v) => match v.get_ref().as_str() {
            "idempotent" => RetryPolicy::Idempotent,
            "always" => RetryPolicy::Always,
            "never" => RetryPolicy::Never,
            other => {
                return Err(ctx.err(
                    line(ctx, v.span()),
                    format!("retry_on_lost_worker = {other:?} is not a policy"),
                    "use \"idempotent\", \"always\" or \"never\"",
                ))
            }
        },
    };
    Ok(McpServer {
        prefix: m.prefix.clone().unwrap_or_else(|| format!("{name}_")),
        name,
        transport,
        tools: m.tools.clone(),
        long_running: m.long_running.clone().unwrap_or_default(),
        call_timeout: Duration::from_millis(
            m.call_timeout_ms.unwrap_or(DEFAULT_CALL_TIMEOUT_MS).max(1),
        ),
        retry,
    })
}

impl McpServer {
    /// The child's environment, for a child-process upstream.
    pub fn command_env(&self) -> Option<&ChildEnv> {
        match &self.transport {
            McpTransport::Stdio(c) => Some(&c.env),
            McpTransport::Http { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Settings;
    use std::path::Path;

    const BASE: &str = "server_id = \"s\"\n[signing]\nsecret = \"x\"\n";

    #[test]
    fn the_issue_examples_load() {
        let text = format!(
            r#"{BASE}
[[tools]]
name = "word_count"
description = "Counts the words of a text."
command = ["python3", "tools/word_count.py"]
args_schema = {{ type = "object", properties = {{ text = {{ type = "string" }} }}, required = ["text"], additionalProperties = false }}

[[mcp_servers]]
name = "everything"
command = ["npx", "-y", "@modelcontextprotocol/server-everything", "stdio"]
env = {{ SOME_VAR = "value" }}
long_running = ["trigger-long-running-operation"]

[[mcp_servers]]
name = "remote"
url = "http://127.0.0.1:9000/mcp"
headers_env = {{ Authorization = "REMOTE_MCP_TOKEN" }}
retry_on_lost_worker = "never"
"#
        );
        let s = Settings::parse(Path::new("/etc/lacre/lacre.toml"), &text).unwrap();
        let t = &s.command_tools[0];
        assert_eq!(t.name, "word_count");
        assert_eq!(t.command.program, Path::new("python3"));
        assert_eq!(t.command.args, ["tools/word_count.py"]);
        assert_eq!(t.command.cwd, Path::new("/etc/lacre"));
        assert!(!t.command.env.inherit);
        assert!(!t.long_running);
        assert_eq!(t.timeout.as_millis(), 30_000);
        let m = &s.mcp_servers[0];
        assert_eq!(m.prefix, "everything_");
        assert_eq!(m.retry, super::RetryPolicy::Idempotent);
        assert_eq!(m.command_env().map(|e| e.vars.len()), Some(1));
        assert_eq!(s.mcp_servers[1].retry, super::RetryPolicy::Never);
    }

    #[test]
    fn the_example_gateway_config_loads() {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/gateway/lacre.toml"
        ));
        let s = Settings::load(path).unwrap();
        assert_eq!(s.mcp_servers.len(), 2);
        assert_eq!(s.command_tools[0].name, "word_count");
        assert!(s.clients[0].tools.allows("py_add"));
        assert!(!s.clients[0].tools.allows("batch_sum"));
    }

    #[test]
    fn a_relative_program_path_is_the_config_files_neighbour() {
        let text = format!("{BASE}[[tools]]\nname = \"t\"\ncommand = [\"./bin/t.sh\"]\n");
        let s = Settings::parse(Path::new("/srv/x/lacre.toml"), &text).unwrap();
        assert_eq!(
            s.command_tools[0].command.program,
            Path::new("/srv/x/./bin/t.sh")
        );
        // Declared without a schema: no arguments at all.
        assert_eq!(
            s.command_tools[0].args_schema["additionalProperties"],
            serde_json::json!(false)
        );
    }

    #[test]
    fn bad_upstream_tables_name_their_line() {
        let cases = [
            ("[[tools]]\nname = \"t\"\ncommand = []\n", 6, "command is empty"),
            (
                "[[tools]]\nname = \"t\"\ncommand = [\"x\"]\nargs_schema = { type = \"nope\" }\n",
                7,
                "tool \"t\"",
            ),
            (
                "[[tools]]\nname = \"t\"\ncommand = [\"x\"]\n[[tools]]\nname = \"t\"\ncommand = [\"y\"]\n",
                8,
                "defined twice",
            ),
            ("[[mcp_servers]]\nname = \"m\"\n", 5, "exactly one of command and url"),
            (
                "[[mcp_servers]]\nname = \"m\"\nurl = \"http://x\"\n[[mcp_servers]]\nname = \"m\"\nurl = \"http://y\"\n",
                8,
                "mcp server \"m\" is defined twice",
            ),
            (
                "[[mcp_servers]]\nname = \"m\"\nurl = \"ftp://x\"\n",
                6,
                "not an http(s) URL",
            ),
            (
                "[[mcp_servers]]\nname = \"m\"\ncommand = [\"x\"]\nretry_on_lost_worker = \"often\"\n",
                7,
                "not a policy",
            ),
        ];
        for (table, want_line, want) in cases {
            let e = Settings::parse(Path::new("c.toml"), &format!("{BASE}{table}")).unwrap_err();
            assert_eq!(e.line, Some(want_line), "{table}: {e}");
            assert!(e.message.contains(want), "{table}: {e}");
        }
    }
}
