//! Helpers: temp dirs, running `lacre`, a `lacre serve` child process,
//! the seed's Python server, and the python3 skip rule.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_lacre");

/// The seed article's ids and secrets.
pub const SERVER_ID: &str = "mcp-server-001";
pub const SERVER_SECRET: &str = "server_secret_key_123";
pub const CLIENT_ID: &str = "client-001";
/// `batch_sum` arguments and the result the CLI prints for them.
pub const SUM_ARGS: &str = r#"{"numbers":[10,20,30]}"#;
pub const SUM_RESULT: &str = "{\"count\":3,\"total\":60.0}\n";
pub const CLIENT_SECRET: &str = "client_secret_key_456";
/// A second client that may call only `batch_sum`.
pub const CLIENT2_ID: &str = "client-002";
pub const CLIENT2_SECRET: &str = "other_secret_789";
/// A third client that may call `batch_sum` and `server_identity`.
pub const CLIENT3_ID: &str = "client-003";
pub const CLIENT3_SECRET: &str = "third_secret_000";

/// How long a `lacre` command may run before the test gives up on it.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a server may take to print its listening line.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Environment variables the CLI reads; removed from every child so the
/// caller's environment cannot change what a test sees.
const LACRE_ENV: [&str; 5] = [
    "LACRE_URL",
    "LACRE_CLIENT_ID",
    "LACRE_SERVER_ID",
    "LACRE_SECRET",
    "LACRE_SERVER_SECRET",
];

/// A fresh directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// A value that owns no directory (dropping it removes nothing).
    pub fn placeholder() -> TempDir {
        TempDir {
            path: PathBuf::new(),
        }
    }

    /// A new empty directory whose name contains `name`.
    pub fn new(name: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "lacre-it-{name}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `self/name`.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Writes `self/name` and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.join(name);
        std::fs::write(&p, contents).expect("write temp file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// What a finished command left behind.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Output {
    /// Panics with the whole output unless the exit code is `want`.
    #[track_caller]
    pub fn expect_code(&self, want: i32, what: &str) -> &Self {
        assert_eq!(
            self.code, want,
            "{what}: exit code {} (want {want})\nstdout: {}\nstderr: {}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    /// Panics with the whole output unless the exit code is `want` and
    /// standard error says `needle`.
    #[track_caller]
    pub fn expect_error(&self, want: i32, what: &str, needle: &str) -> &Self {
        self.expect_code(want, what);
        assert!(
            self.stderr.contains(needle),
            "{what}: stderr should say {needle:?}: {}",
            self.stderr
        );
        self
    }

    /// `expect_code(0)`.
    #[track_caller]
    pub fn ok(&self, what: &str) -> &Self {
        self.expect_code(0, what)
    }
}

/// A `lacre` (or other program's) invocation.
pub struct Cmd {
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    cwd: Option<PathBuf>,
    stdin: Option<Vec<u8>>,
}

impl Cmd {
    /// `lacre ARGS...`.
    pub fn lacre<S: AsRef<str>>(args: &[S]) -> Cmd {
        Cmd::program(BIN, args)
    }

    /// `PROGRAM ARGS...`.
    pub fn program<S: AsRef<str>>(program: impl Into<PathBuf>, args: &[S]) -> Cmd {
        Cmd {
            program: program.into(),
            args: args.iter().map(|a| a.as_ref().to_owned()).collect(),
            env: Vec::new(),
            cwd: None,
            stdin: None,
        }
    }

    /// More arguments.
    pub fn args<S: AsRef<str>>(mut self, args: &[S]) -> Cmd {
        self.args.extend(args.iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// An environment variable.
    pub fn env(mut self, key: &str, value: &str) -> Cmd {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The working directory.
    pub fn cwd(mut self, dir: &Path) -> Cmd {
        self.cwd = Some(dir.to_path_buf());
        self
    }

    /// Bytes for standard input (else stdin is empty).
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Cmd {
        self.stdin = Some(bytes.into());
        self
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.args);
        for k in LACRE_ENV {
            c.env_remove(k);
        }
        for (k, v) in &self.env {
            c.env(k, v);
        }
        if let Some(d) = &self.cwd {
            c.current_dir(d);
        }
        c
    }

    /// Runs to completion (at most [`COMMAND_TIMEOUT`]) and captures it.
    pub fn run(&self) -> Output {
        let mut child = self
            .command()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.program.display()));
        let mut stdin = child.stdin.take().expect("stdin");
        let input = self.stdin.clone().unwrap_or_default();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
            // dropping stdin closes it
        });
        let out = drain(child.stdout.take().expect("stdout"));
        let err = drain(child.stderr.take().expect("stderr"));
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} {:?} did not finish within {COMMAND_TIMEOUT:?}",
                    self.program.display(),
                    self.args
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let _ = writer.join();
        Output {
            code: status.code().unwrap_or(-1),
            stdout: out.join().expect("stdout reader"),
            stderr: err.join().expect("stderr reader"),
        }
    }
}

fn drain<R: Read + Send + 'static>(mut r: R) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// The server config used by most tests: the seed's HMAC keys, plus a
/// restricted `client-002` (`batch_sum` only, its secret in a file next to
/// the config) and `client-003` (`batch_sum` and `server_identity`).
pub fn default_config() -> String {
    format!(
        r#"server_id = "{SERVER_ID}"
listen = "127.0.0.1:0"
max_skew_ms = 300000

[signing]
alg = "hmac-sha256"
secret = "{SERVER_SECRET}"

[[clients]]
id = "{CLIENT_ID}"
alg = "hmac-sha256"
secret = "{CLIENT_SECRET}"
tools = ["*"]

[[clients]]
id = "{CLIENT2_ID}"
secret_file = "client-002.secret"
tools = ["batch_sum"]

[[clients]]
id = "{CLIENT3_ID}"
secret = "{CLIENT3_SECRET}"
tools = ["batch_sum", "server_identity"]
"#
    )
}

/// A running `lacre serve` child, killed on drop.
pub struct ServeGuard {
    child: Child,
    args: Vec<String>,
    cwd: Option<PathBuf>,
    /// `http://127.0.0.1:PORT/mcp`.
    pub url: String,
    /// Everything the server wrote on stderr so far.
    pub stderr: Arc<Mutex<Vec<String>>>,
    /// The directory holding the config and the secret files.
    pub dir: TempDir,
}

impl ServeGuard {
    /// `lacre serve --config DIR/lacre.toml --listen 127.0.0.1:0` with
    /// [`default_config`], and the secret files the CLI reads
    /// (`server.secret`, `client-001.secret`, `client-002.secret`,
    /// `client-003.secret`, `wrong.secret`).
    pub fn start(name: &str) -> ServeGuard {
        Self::start_with_config(name, &default_config())
    }

    /// As [`ServeGuard::start`], with another config text.
    pub fn start_with_config(name: &str, config: &str) -> ServeGuard {
        Self::start_with_args(name, config, &[])
    }

    /// As [`ServeGuard::start_with_config`], with more `serve` flags.
    pub fn start_with_args(name: &str, config: &str, extra: &[&str]) -> ServeGuard {
        Self::start_with_env(name, config, extra, &[])
    }

    /// As [`ServeGuard::start_with_args`], with more variables in the
    /// server's environment.
    pub fn start_with_env(
        name: &str,
        config: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> ServeGuard {
        let dir = TempDir::new(name);
        // Files with and without a trailing newline: both must read the same.
        dir.write("server.secret", &format!("{SERVER_SECRET}\n"));
        dir.write("client-001.secret", CLIENT_SECRET);
        dir.write("client-002.secret", &format!("{CLIENT2_SECRET}\n"));
        dir.write("client-003.secret", CLIENT3_SECRET);
        dir.write("wrong.secret", "not_the_right_secret\n");
        let cfg = dir.write("lacre.toml", config);
        let mut args = vec![
            "serve".to_owned(),
            "--config".to_owned(),
            cfg.display().to_string(),
        ];
        // Any free port, unless the caller names one.
        if !extra.contains(&"--listen") {
            args.extend(["--listen".to_owned(), "127.0.0.1:0".to_owned()]);
        }
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        Self::spawn_with_env(dir, &args, None, env)
    }

    /// Runs `lacre ARGS` (in `cwd`, default `dir`) and waits for
    /// `lacre: listening on http://ADDR/mcp ...` on its stderr.
    pub fn spawn(dir: TempDir, args: &[String], cwd: Option<&Path>) -> ServeGuard {
        Self::spawn_with_env(dir, args, cwd, &[])
    }

    /// As [`ServeGuard::spawn`], with more variables in the environment.
    pub fn spawn_with_env(
        dir: TempDir,
        args: &[String],
        cwd: Option<&Path>,
        env: &[(&str, &str)],
    ) -> ServeGuard {
        let mut cmd = Cmd::lacre(args).command();
        cmd.envs(env.iter().copied());
        cmd.current_dir(cwd.unwrap_or(dir.path()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn lacre serve");
        let stderr = child.stderr.take().expect("serve stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<String>();
        let seen = Arc::clone(&lines);
        // Keeps draining stderr after the listening line, so the server never
        // blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if !sent {
                    if let Some(url) = listening_url(&line) {
                        let _ = tx.send(url);
                        sent = true;
                    }
                }
                seen.lock().expect("stderr lines").push(line);
            }
        });
        let mut guard = ServeGuard {
            child,
            args: args.to_vec(),
            cwd: cwd.map(Path::to_path_buf),
            url: String::new(),
            stderr: lines,
            dir,
        };
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(url) => guard.url = url,
            Err(_) => {
                let status = guard.child.try_wait().ok().flatten();
                panic!(
                    "lacre serve did not print its listening line within {START_TIMEOUT:?} \
                     (exit status {status:?}); stderr:\n{}",
                    guard.stderr_text()
                );
            }
        }
        guard
    }

    /// Kills the server with SIGKILL (no chance to clean up) and starts it
    /// again with the same arguments and directory; `url` is updated.
    pub fn kill_and_restart(self) -> ServeGuard {
        let mut this = self;
        let _ = this.child.kill();
        let _ = this.child.wait();
        let dir = std::mem::replace(&mut this.dir, TempDir::placeholder());
        let args = std::mem::take(&mut this.args);
        let cwd = this.cwd.take();
        drop(this);
        ServeGuard::spawn(dir, &args, cwd.as_deref())
    }

    /// Sends SIGTERM and waits (at most 20 s) for the server to exit;
    /// returns its exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Waits (at most `within`) for a line of the server's stderr that
    /// contains `needle` and is not among the first `skip` lines; returns
    /// the line and its index.
    pub fn wait_for_line(&self, needle: &str, skip: usize, within: Duration) -> (usize, String) {
        let deadline = Instant::now() + within;
        loop {
            {
                let lines = self.stderr.lock().expect("stderr lines");
                if let Some((i, l)) = lines
                    .iter()
                    .enumerate()
                    .skip(skip)
                    .find(|(_, l)| l.contains(needle))
                {
                    return (i, l.clone());
                }
            }
            assert!(
                Instant::now() < deadline,
                "no stderr line with {needle:?} within {within:?}; stderr:\n{}",
                self.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the server with SIGKILL.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Everything the server has written on stderr.
    pub fn stderr_text(&self) -> String {
        self.stderr.lock().expect("stderr lines").join("\n")
    }

    /// `DIR/name` as a string.
    pub fn file(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// The client flags for `client_id`, keys from its secret file.
    pub fn client_args(&self, client_id: &str) -> Vec<String> {
        vec![
            "--url".into(),
            self.url.clone(),
            "--client-id".into(),
            client_id.into(),
            "--server-id".into(),
            SERVER_ID.into(),
            "--secret-file".into(),
            self.file(&format!("{client_id}.secret")),
            "--server-secret-file".into(),
            self.file("server.secret"),
        ]
    }

    /// `lacre ARGS... <client-001 flags>`, run in the server's directory.
    /// `lacre call batch_sum` against this server with its URL and ids on
    /// the command line and no key yet.
    pub fn sum_call(&self) -> Cmd {
        Cmd::lacre(&["call", "batch_sum", SUM_ARGS])
            .args(&["--url", &self.url, "--client-id", CLIENT_ID])
            .args(&["--server-id", SERVER_ID])
    }

    pub fn lacre<S: AsRef<str>>(&self, args: &[S]) -> Output {
        self.lacre_as(CLIENT_ID, args)
    }

    /// `lacre ARGS... <client flags>`, run in the server's directory.
    pub fn lacre_as<S: AsRef<str>>(&self, client_id: &str, args: &[S]) -> Output {
        Cmd::lacre(args)
            .args(&self.client_args(client_id))
            .cwd(self.dir.path())
            .run()
    }
}

impl Drop for ServeGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The URL in `lacre: listening on http://ADDR/mcp (...)`.
fn listening_url(line: &str) -> Option<String> {
    let rest = line.strip_prefix("lacre: listening on ")?;
    let url = rest.split_whitespace().next()?;
    (url.starts_with("http://") && url.ends_with("/mcp")).then(|| url.to_owned())
}

/// The first job id in `{"job_id":"..."}`-shaped JSON output.
pub fn job_id_of(stdout: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not json ({e}): {stdout:?}"));
    v["job_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no job_id in {stdout:?}"))
        .to_owned()
}

/// Parses one line of JSON output.
pub fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not json ({e}): {stdout:?}"))
}

/// A check that a test may skip: when it cannot run here, print
/// `SKIPPED <name>: <why>` and return false, unless `CI` is set, where a
/// missing prerequisite is a failure.
pub fn skip_or_panic(name: &str, why: &str) -> bool {
    if std::env::var_os("CI").is_some() || std::env::var_os("LACRE_REQUIRE_ALL").is_some() {
        panic!("{name}: {why} (CI is set, so this is a failure, not a skip)");
    }
    // Past the test harness's capture (which hides a passing test's
    // output), so the skip shows in `cargo test`'s own output.
    let _ = writeln!(std::io::stderr(), "SKIPPED {name}: {why}");
    false
}

/// Whether `program --version` runs and succeeds.
fn runs(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether `python3` runs; see [`skip_or_panic`].
pub fn python3_or_skip(name: &str) -> bool {
    runs("python3") || skip_or_panic(name, "python3 not found")
}

/// Whether `python3` runs and imports pydantic and aiohttp (what the seed's
/// programs need); see [`skip_or_panic`].
pub fn seed_python_or_skip(name: &str) -> bool {
    if !python3_or_skip(name) {
        return false;
    }
    let out = Cmd::program("python3", &["-c", "import pydantic, aiohttp"]).run();
    out.code == 0
        || skip_or_panic(
            name,
            &format!(
                "python3 cannot import pydantic and aiohttp \
                 (pip install -r testdata/requirements.txt): {}",
                out.stderr.trim()
            ),
        )
}

/// [`server_everything_or_skip`] once each of `needs` holds (each one
/// skips or fails as its own `…_or_skip` does).
pub fn server_everything_with(name: &str, needs: &[fn(&str) -> bool]) -> Option<String> {
    if !needs.iter().all(|holds| holds(name)) {
        return None;
    }
    server_everything_or_skip(name)
}

/// The reference MCP server `@modelcontextprotocol/server-everything`,
/// pinned in `testdata/peers/package.json` and installed by `.ci/run`
/// (`npm ci --prefix testdata/peers`): its entry point, if node and the
/// package are here; see [`skip_or_panic`].
pub fn server_everything_or_skip(name: &str) -> Option<String> {
    let entry =
        testdata("peers/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    if !runs("node") {
        skip_or_panic(name, "node not found");
        return None;
    }
    if !Path::new(&entry).exists() {
        skip_or_panic(
            name,
            "the npm test peers are not installed (npm ci --prefix testdata/peers)",
        );
        return None;
    }
    Some(entry)
}

/// Whether python3 has the seed's packages and imports `module` (pinned in
/// testdata/requirements.txt); see [`skip_or_panic`].
pub fn python_module_or_skip(name: &str, module: &str) -> bool {
    seed_python_or_skip(name) && {
        let out = Cmd::program("python3", &["-c", &format!("import {module}")]).run();
        out.code == 0
            || skip_or_panic(
                name,
                &format!(
                    "python3 cannot import {module} (pip install -r testdata/requirements.txt)"
                ),
            )
    }
}

/// A port that was free a moment ago on 127.0.0.1 (for a server that must
/// come back on the same address).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Path of a file in the repository's `testdata/` directory.
pub fn testdata(file: &str) -> String {
    format!(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/{}"),
        file
    )
}

/// Whether process `pid` exists (and is not a zombie).
pub fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .split(") ")
            .nth(1)
            .is_some_and(|rest| rest.starts_with('Z'))
    })
}

/// Waits (at most `within`) until `check` holds.
pub fn eventually(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `python3 interop/seed_client.py` against `url` with the seed's ids and
/// secrets, then `extra`.
pub fn seed_client(url: &str, extra: &[&str]) -> Cmd {
    let script = interop("seed_client.py");
    Cmd::program(
        "python3",
        &[
            script.as_str(),
            "--url",
            url,
            "--client-id",
            CLIENT_ID,
            "--client-secret",
            CLIENT_SECRET,
            "--server-id",
            SERVER_ID,
            "--server-secret",
            SERVER_SECRET,
        ],
    )
    .args(extra)
}

/// Path of a file in the repository's `interop/` directory.
pub fn interop(file: &str) -> String {
    format!(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../interop/{}"),
        file
    )
}

/// `python3 interop/seed_server.py --port 0 ...`, killed on drop.
pub struct SeedServer {
    child: Child,
    /// `http://127.0.0.1:PORT/mcp`.
    pub url: String,
    stderr: Arc<Mutex<String>>,
}

impl SeedServer {
    /// Starts the seed's server with the article's ids and secrets and
    /// waits for its `LISTENING http://...` line.
    pub fn start() -> SeedServer {
        let client = format!("{CLIENT_ID}={CLIENT_SECRET}");
        let mut child = Command::new("python3")
            .args([
                interop("seed_server.py").as_str(),
                "--port",
                "0",
                "--server-id",
                SERVER_ID,
                "--server-secret",
                SERVER_SECRET,
                "--client",
                &client,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn seed_server.py");
        let stdout = child.stdout.take().expect("seed stdout");
        let stderr_pipe = child.stderr.take().expect("seed stderr");
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr_pipe).lines() {
                let Ok(line) = line else { break };
                let mut s = sink.lock().expect("seed stderr");
                s.push_str(&line);
                s.push('\n');
            }
        });
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("LISTENING ") {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let mut server = SeedServer {
            child,
            url: String::new(),
            stderr,
        };
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(url) => server.url = url,
            Err(_) => panic!(
                "seed_server.py did not print LISTENING within {START_TIMEOUT:?}; stderr:\n{}",
                server.stderr.lock().expect("seed stderr")
            ),
        }
        server
    }
}

impl Drop for SeedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET http://HOST/PATH` (PATH taken from `url`'s host and `path`) over a
/// plain HTTP/1.1 connection; the response body.
pub fn raw_get(url: &str, path: &str) -> String {
    let rest = url.strip_prefix("http://").expect("http url");
    let host = rest.split('/').next().expect("url host");
    let mut stream = std::net::TcpStream::connect(host).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let head = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).expect("write head");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("read reply");
    reply
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_else(|| panic!("no HTTP body in {reply:?}"))
}

/// Sends `body` as `POST /mcp` over a plain HTTP/1.1 connection and
/// returns the response body: a client that checks nothing, to see exactly
/// what the server answers.
pub fn raw_post(url: &str, body: &[u8]) -> String {
    let rest = url.strip_prefix("http://").expect("http url");
    let (host, path) = rest.split_once('/').expect("url path");
    let mut stream = std::net::TcpStream::connect(host).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let head = format!(
        "POST /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("write head");
    stream.write_all(body).expect("write body");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("read reply");
    let (_, body) = reply
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP body in {reply:?}"));
    body.to_owned()
}
