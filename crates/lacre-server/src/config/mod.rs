//! `lacre serve`'s configuration file (TOML), in parts: the file's schema
//! ([`file`]), key resolution ([`keys`]), validation into [`Settings`]
//! ([`settings`]), wiring settings into a server ([`wiring`]), and the
//! defaults with the files written on first start ([`defaults`]). Errors
//! name the file, the line and the fix.

pub mod defaults;
pub mod file;
mod keys;
pub mod settings;
pub mod upstreams;
mod webhooks;
mod wiring;

pub use defaults::{generate_default, DefaultFiles, DEFAULT_LISTEN, DEFAULT_STORE};
pub use file::{
    ClientSpec, CommandToolSpec, FileConfig, KeyEntry, KeySpec, LimitsSpec, McpServerSpec, RateSpec,
};
pub use settings::{ClientSettings, NonceSettings, Settings};

use std::fmt;
use std::path::{Path, PathBuf};

/// A configuration problem, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// The 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.file.display(), l, self.message)?,
            None => write!(f, "{}: {}", self.file.display(), self.message)?,
        }
        if !self.fix.is_empty() {
            write!(f, "\n  fix: {}", self.fix)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// The file being checked: errors are located in it, relative key files
/// are found next to it.
pub(crate) struct Ctx<'a> {
    pub(crate) file: &'a Path,
    pub(crate) text: &'a str,
}

impl Ctx<'_> {
    pub(crate) fn err(
        &self,
        line: Option<usize>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            file: self.file.to_path_buf(),
            line,
            message: message.into(),
            fix: fix.into(),
        }
    }

    /// The 1-based line of a byte offset (a span's start).
    pub(crate) fn line_of(&self, offset: usize) -> usize {
        self.text
            .get(..offset)
            .map_or(1, |t| t.matches('\n').count() + 1)
    }

    /// The value of the environment variable a setting names; `example`
    /// is what the fix suggests exporting.
    pub(crate) fn env_value(
        &self,
        var: &toml::Spanned<String>,
        example: &str,
    ) -> Result<String, ConfigError> {
        std::env::var(var.get_ref()).map_err(|_| {
            self.err(
                Some(self.line_of(var.span().start)),
                format!("environment variable {} is not set", var.get_ref()),
                format!("export {}={example} before starting", var.get_ref()),
            )
        })
    }

    /// The text of a file a setting names (relative to the config file).
    pub(crate) fn file_text(&self, file: &toml::Spanned<PathBuf>) -> Result<String, ConfigError> {
        let full = crate::keys::resolve_path(&self.base_dir(), file.get_ref());
        std::fs::read_to_string(&full).map_err(|e| {
            self.err(
                Some(self.line_of(file.span().start)),
                format!("cannot read {}: {e}", full.display()),
                "check the path (relative paths are relative to the config file)",
            )
        })
    }

    pub(crate) fn base_dir(&self) -> PathBuf {
        self.file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }
}

/// Makes a relative SQLite path relative to the configuration file, so the
/// database sits next to its config whatever the working directory.
fn resolve_sqlite_path(url: &str, config: &Path) -> String {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (file, query) = match rest.split_once('?') {
        Some((f, q)) => (f, Some(q)),
        None => (rest, None),
    };
    if file.is_empty() || file.starts_with('/') || file.starts_with(":memory:") {
        return url.to_owned();
    }
    let dir = config.parent().filter(|d| !d.as_os_str().is_empty());
    let full = match dir {
        Some(d) => d.join(file),
        None => PathBuf::from(file),
    };
    let mut out = format!("sqlite://{}", full.display());
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use lacre_proto::{to_hex, Algorithm, SigningKey};

    #[test]
    fn the_issue_example_loads() {
        let text = r#"
server_id = "mcp-server-001"
listen = "127.0.0.1:8790"
max_skew_ms = 300000
[signing]
alg = "hmac-sha256"
secret = "server_secret_key_123"
[[clients]]
id = "client-001"
alg = "hmac-sha256"
secret = "client_secret_key_456"
tools = ["*"]
[[clients]]
id = "rotating"
keys = ["old-secret", { secret_hex = "00ff" }]
tools = ["batch_sum"]
rate_limit = { per_second = 5, burst = 10 }
"#;
        let s = Settings::parse(Path::new("lacre.toml"), text).unwrap();
        assert_eq!(s.server_id, "mcp-server-001");
        assert_eq!(s.clients.len(), 2);
        assert_eq!(s.clients[1].keys.len(), 2);
        assert!(!s.clients[1].tools.allows("start_long_task"));
        assert_eq!(s.clients[1].rate.map(|r| r.burst), Some(10.0));
        assert!(s.clients[0].rate.is_none());
    }

    #[test]
    fn nonces_go_to_a_journal_only_beside_a_sqlite_file() {
        let base = "server_id = \"s\"\n[signing]\nsecret = \"x\"\n";
        let parse = |store: &str, nonces: &str| {
            let text = format!("store = \"{store}\"\n{base}[nonces]\n{nonces}");
            Settings::parse(Path::new("/srv/c.toml"), &text)
        };
        let s = parse("sqlite://lacre.db", "").unwrap();
        assert_eq!(s.nonces.journal_for(&s.store), Some(false));
        let s = parse("sqlite://lacre.db", "fsync = true\n").unwrap();
        assert_eq!(s.nonces.journal_for(&s.store), Some(true));
        assert_eq!(
            crate::store::journal_dir(&s.store),
            Some(PathBuf::from("/srv/lacre.db-nonces"))
        );
        let s = parse("sqlite://lacre.db", "journal = false\n").unwrap();
        assert_eq!(s.nonces.journal_for(&s.store), None);
        let s = parse("postgres://u@h/db", "").unwrap();
        assert_eq!(s.nonces.journal_for(&s.store), None);
        assert_eq!(s.nonces.journal_for("sqlite::memory:"), None);
        // Asked for where it cannot be: refused, at the value's line.
        let e = parse("postgres://u@h/db", "journal = true\n").unwrap_err();
        assert_eq!(e.line, Some(6), "{e}");
        assert!(e.message.contains("needs a SQLite database file"), "{e}");
        let e = parse("memory", "fsync = true\n").unwrap_err();
        assert_eq!(e.line, Some(6), "{e}");
        let e = parse("sqlite://lacre.db", "journal = false\nfsync = true\n").unwrap_err();
        assert_eq!(e.line, Some(7), "{e}");
    }

    #[test]
    fn zero_workers_are_refused() {
        let text = "server_id = \"s\"\nworkers = 0\n[signing]\nsecret = \"x\"\n";
        let e = Settings::parse(Path::new("c.toml"), text).unwrap_err();
        assert!(e.message.contains("workers = 0"), "{e}");
        assert_eq!(e.line, Some(2), "{e}");
    }

    #[test]
    fn client_limits_default_and_override() {
        let text = "server_id = \"s\"\n[client_limits]\nmax_jobs = 10\n[signing]\nsecret = \"x\"\n[[clients]]\nid = \"a\"\nsecret = \"k\"\n[[clients]]\nid = \"b\"\nsecret = \"k\"\nlimits = { max_jobs = 3, max_long_polls = 2 }\n";
        let s = Settings::parse(Path::new("c.toml"), text).unwrap();
        assert_eq!(s.clients[0].limits.max_jobs, 10);
        assert_eq!(s.clients[0].limits.max_in_flight, 64);
        assert_eq!(s.clients[1].limits.max_jobs, 3);
        assert_eq!(s.clients[1].limits.max_long_polls, 2);
    }

    #[test]
    fn errors_name_file_line_and_fix() {
        let text = "server_id = \"s\"\n[signing]\nsecret = \"x\"\nsecret_hex = \"00\"\n";
        let e = Settings::parse(Path::new("/etc/lacre.toml"), text).unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e
            .to_string()
            .starts_with("/etc/lacre.toml:2: an hmac-sha256 key needs exactly one of"));
        assert!(e.to_string().contains("fix:"));
        let bad = "server_id = \"s\"\nlisten = 5\n[signing]\nsecret = \"x\"\n";
        let e = Settings::parse(Path::new("c.toml"), bad).unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        let unknown = "server_id = \"s\"\n[signing]\nsecret = \"x\"\nsecrett = \"y\"\n";
        let e = Settings::parse(Path::new("c.toml"), unknown).unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
    }

    #[test]
    fn error_lines_come_from_the_value_not_a_text_search() {
        // A search for the word "listen" would find the comment or
        // `metrics_listen` first.
        let text = "# listen on loopback only\nserver_id = \"s\"\nmetrics_listen = \"127.0.0.1:9790\"\nlisten = \"nowhere\"\n[signing]\nsecret = \"x\"\n";
        let e = Settings::parse(Path::new("c.toml"), text).unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
        assert!(e.message.contains("\"nowhere\" is not an address"), "{e}");
        let text = "server_id = \"s\"\n[signing]\nsecret = \"x\"\n[[clients]]\nid = \"a\"\nsecret = \"k\"\n[[clients]]\nid = \"a\"\nsecret = \"k\"\n";
        let e = Settings::parse(Path::new("c.toml"), text).unwrap_err();
        assert_eq!(e.line, Some(8), "{e}");
        assert!(e.message.contains("listed twice"), "{e}");
    }

    #[test]
    fn the_store_url_can_stay_out_of_the_file() {
        // files_and_secrets: a password belongs in the environment or a
        // private file, not in the config or on the command line.
        let base = "server_id = \"s\"\n[signing]\nsecret = \"x\"\n";
        std::env::set_var("LACRE_TEST_STORE_URL", "postgres://u:pw@h/db\n");
        let s = Settings::parse(
            Path::new("c.toml"),
            &format!("store_env = \"LACRE_TEST_STORE_URL\"\n{base}"),
        )
        .unwrap();
        assert_eq!(s.store, "postgres://u:pw@h/db");
        let dir = std::env::temp_dir().join(format!("lacre-store-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("store.url"), "memory\n").unwrap();
        let s = Settings::parse(
            &dir.join("c.toml"),
            &format!("store_file = \"store.url\"\n{base}"),
        )
        .unwrap();
        assert_eq!(s.store, "memory");
        std::fs::remove_dir_all(&dir).unwrap();
        let both = format!("store = \"memory\"\nstore_env = \"X\"\n{base}");
        let e = Settings::parse(Path::new("c.toml"), &both).unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
    }

    #[test]
    fn weak_ed25519_client_keys_are_refused_at_configuration() {
        // The identity point signs every message with S = r, R = r B; a
        // non-canonical spelling of a point (y ≥ p) is another key to
        // another verifier. testdata/vectors/ed25519.json has the rest.
        for (public, why) in [
            (
                "0100000000000000000000000000000000000000000000000000000000000000",
                "small order",
            ),
            (
                "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
                "small order",
            ),
            (
                "f0ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
                "not canonically encoded",
            ),
        ] {
            let text = format!(
                "server_id = \"s\"\n[signing]\nsecret = \"x\"\n[[clients]]\nid = \"c\"\nalg = \"ed25519\"\npublic_key_hex = \"{public}\"\n"
            );
            let e = Settings::parse(Path::new("c.toml"), &text).unwrap_err();
            // The line of the client's `id`.
            assert_eq!(e.line, Some(5), "{e}");
            assert!(e.message.contains(why), "{public}: {e}");
        }
    }

    #[test]
    fn key_lists_inherit_the_client_alg() {
        let pk = SigningKey::ed25519_from_seed(&[1u8; 32])
            .unwrap()
            .verifying_key();
        let pk_hex = to_hex(&pk.ed25519_public_bytes().unwrap());
        let text = format!(
            "server_id = \"s\"\n[signing]\nsecret = \"x\"\n[[clients]]\nid = \"c\"\nalg = \"ed25519\"\nkeys = [\"{pk_hex}\", {{ public_key_hex = \"{pk_hex}\" }}]\n"
        );
        let s = Settings::parse(Path::new("c.toml"), &text).unwrap();
        assert!(s.clients[0]
            .keys
            .iter()
            .all(|k| k.algorithm() == Algorithm::Ed25519));
        assert_eq!(s.clients[0].keys[0].fingerprint(), pk.fingerprint());
    }

    #[test]
    fn default_config_round_trips() {
        let d = generate_default("127.0.0.1:8790").unwrap();
        let s = Settings::parse(Path::new("lacre.toml"), &d.server_toml).unwrap();
        assert_eq!(s.server_id, d.server_id);
        assert_eq!(s.signing.algorithm(), Algorithm::Ed25519);
        assert_eq!(s.clients[0].id, "client-001");
    }
}
