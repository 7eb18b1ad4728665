//! The seed's demo tools, `batch_sum` and `start_long_task`, and the
//! benchmark tool `noop_job`: ordinary registered tools. The system tools
//! (`server_identity` and the job tools) live in [`crate::system`].

use crate::tool::{Registry, ToolArgs, ToolError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `batch_sum` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchSumIn {
    /// At least one number; integers are read as floats.
    #[schemars(length(min = 1))]
    pub numbers: Vec<f64>,
}
impl ToolArgs for BatchSumIn {
    fn validate(&self) -> Result<(), String> {
        if self.numbers.is_empty() {
            return Err("numbers: list should have at least 1 item".to_owned());
        }
        Ok(())
    }
}

/// `batch_sum` result.
#[derive(Debug, Serialize)]
pub struct BatchSumOut {
    /// How many numbers.
    pub count: u64,
    /// Their sum (a float: `[10,20,30]` gives `60.0`).
    pub total: f64,
}

/// `start_long_task` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StartLongTaskIn {
    /// How long the task runs, 1 to 20 seconds.
    #[schemars(range(min = 1, max = 20))]
    pub seconds: u64,
    /// Returned as the job's result, unchanged.
    #[serde(default, deserialize_with = "object_only")]
    #[schemars(with = "serde_json::Map<String, serde_json::Value>")]
    pub payload: serde_json::Map<String, serde_json::Value>,
}
impl ToolArgs for StartLongTaskIn {
    fn validate(&self) -> Result<(), String> {
        if !(1..=20).contains(&self.seconds) {
            return Err(format!(
                "seconds: must be between 1 and 20, got {}",
                self.seconds
            ));
        }
        Ok(())
    }
}

/// Accepts a JSON object only (`null` is not an empty object).
fn object_only<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<serde_json::Map<String, serde_json::Value>, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Object(m) => Ok(m),
        other => Err(serde::de::Error::custom(format!(
            "payload: must be an object, got {}",
            match other {
                serde_json::Value::Null => "null",
                serde_json::Value::Bool(_) => "a boolean",
                serde_json::Value::Number(_) => "a number",
                serde_json::Value::String(_) => "a string",
                serde_json::Value::Array(_) => "an array",
                serde_json::Value::Object(_) => "an object",
            }
        ))),
    }
}

/// Registers every built-in tool: the system tools and the seed's demo tools.
pub fn register(reg: &mut Registry) {
    crate::system::register(reg);
    reg.immediate(
        "batch_sum",
        "Adds a list of numbers; returns their count and total (a float).",
        |args: BatchSumIn, _ctx| async move {
            // Left to right from +0.0, as CPython 3.11's `sum()` does
            // (`iter().sum()` starts from -0.0).
            let total = args.numbers.iter().fold(0.0, |acc, x| acc + x);
            if !total.is_finite() {
                return Err(ToolError::InvalidArgs(
                    "numbers: the total overflows a float".to_owned(),
                ));
            }
            Ok(BatchSumOut {
                count: args.numbers.len() as u64,
                total,
            })
        },
    );
    reg.long_running(
        "start_long_task",
        "Sleeps for `seconds` (1-20), reporting progress each second, then returns `payload`.",
        |args: StartLongTaskIn, ctx| async move {
            for done in 0..args.seconds {
                ctx.progress(
                    done as f64 / args.seconds as f64,
                    format!("{done}/{} seconds", args.seconds),
                );
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            ctx.progress(1.0, format!("{0}/{0} seconds", args.seconds));
            // The payload comes back byte for byte, big integers included.
            let payload = match ctx.raw_args().get("payload") {
                Some(lacre_proto::Value::Object(m)) => m.clone(),
                _ => lacre_proto::Map::new(),
            };
            Ok(payload)
        },
    );
}

/// `noop_job` arguments: anything, returned as the result.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct NoopJobIn {
    /// Any members; the job returns them.
    #[serde(flatten)]
    pub echo: serde_json::Map<String, serde_json::Value>,
}
impl ToolArgs for NoopJobIn {}

/// `test_fault` arguments: what the tool does.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestFaultIn {
    /// `ok`, `fail` (the tool fails), `panic` (the tool panics), or
    /// `sleep` (the tool answers after `ms`).
    pub action: TestFault,
    /// For `sleep`: how long, 0 to 60000 ms.
    #[serde(default)]
    #[schemars(range(min = 0, max = 60000))]
    pub ms: u64,
}
impl ToolArgs for TestFaultIn {
    fn validate(&self) -> Result<(), String> {
        if self.ms > 60_000 {
            return Err(format!("ms: must be between 0 and 60000, got {}", self.ms));
        }
        Ok(())
    }
}

/// What `test_fault` and `test_fault_job` do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TestFault {
    /// Answer `{}`.
    Ok,
    /// Fail: `internal` for the immediate tool, `job_failed` for the job.
    Fail,
    /// Panic: a signed `internal` (immediate), a failed job (job).
    Panic,
    /// Sleep `ms`, then answer `{}` (past `tool_timeout_ms`: `internal`).
    Sleep,
}

async fn test_fault(args: TestFaultIn) -> Result<lacre_proto::Map, ToolError> {
    match args.action {
        TestFault::Ok => Ok(lacre_proto::Map::new()),
        TestFault::Fail => Err(ToolError::failed("test_fault: failing as asked")),
        TestFault::Panic => panic!("test_fault: panicking as asked"),
        TestFault::Sleep => {
            tokio::time::sleep(Duration::from_millis(args.ms)).await;
            Ok(lacre_proto::Map::new())
        }
    }
}

/// Registers `test_fault` (immediate) and `test_fault_job` (long-running),
/// which succeed, fail, panic or sleep on request, so that an implementer
/// can provoke `internal` and `job_failed` without harming the server
/// (`lacre serve --test-tools`; never in production).
pub fn register_test_tools(reg: &mut Registry) {
    reg.immediate(
        "test_fault",
        "Succeeds, fails, panics or sleeps on request (testing only).",
        |args: TestFaultIn, _ctx| test_fault(args),
    );
    reg.long_running(
        "test_fault_job",
        "A job that succeeds, fails, panics or sleeps on request (testing only).",
        |args: TestFaultIn, _ctx| test_fault(args),
    );
}

/// Registers `noop_job`, a long-running tool that finishes at once: for
/// measuring the job machinery itself (`lacre serve --bench-tools`).
pub fn register_bench_tools(reg: &mut Registry) {
    reg.long_running(
        "noop_job",
        "A job that completes at once and returns its arguments (benchmarks).",
        |_args: NoopJobIn, ctx| async move { Ok(ctx.raw_args().clone()) },
    );
}
