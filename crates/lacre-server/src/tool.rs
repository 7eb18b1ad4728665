//! The tool registry: typed tools, erased behind one calling convention.
//!
//! A tool's arguments derive `serde::Deserialize` (with
//! `deny_unknown_fields`, the seed's `extra="forbid"`) and
//! `schemars::JsonSchema` (published in `server_identity`), and implement
//! [`ToolArgs`] (usually with an empty `impl`, or a `validate` for rules a
//! type cannot express). Results derive `serde::Serialize` and must
//! serialize to a JSON object.

use crate::error::CallError;
use crate::jobs::JobContext;
use crate::schema::{ArgsSchema, SchemaError};
use crate::system::SystemContext;
use lacre_proto::{Map, Status, Value};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Arguments of a tool.
pub trait ToolArgs: DeserializeOwned + schemars::JsonSchema + Send + 'static {
    /// Checks rules the type cannot express (ranges, lengths). The message
    /// is sent to the caller with code `invalid_args`.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

/// A tool's failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    /// The arguments are well-typed but unacceptable (`invalid_args`).
    #[error("{0}")]
    InvalidArgs(String),
    /// The tool failed (`internal` for immediate tools, `job_failed` for jobs).
    #[error("{0}")]
    Failed(String),
    /// A tool behind the gateway ran and reported a failure (an MCP
    /// result with `isError`, a command's non-zero exit): `tool_error`
    /// for immediate tools, `job_failed` for jobs.
    #[error("the tool reported an error: {0}")]
    Reported(String),
    /// The process or server behind the tool cannot be reached or died
    /// during the call: `upstream_unavailable` for immediate tools,
    /// `job_failed` for jobs.
    #[error("upstream unavailable: {0}")]
    Unavailable(String),
    /// A job's upstream was lost and the job may run again: the worker
    /// records nothing and the job's lease runs out, so it is re-queued
    /// like the job of a lost worker (and fails after the attempt limit).
    /// For an immediate tool, `upstream_unavailable`.
    #[error("upstream lost, the job will run again: {0}")]
    Requeue(String),
}

impl ToolError {
    /// A failure with a message for the caller.
    pub fn failed(msg: impl Into<String>) -> ToolError {
        ToolError::Failed(msg.into())
    }
}

/// Facts about the call an immediate tool may use.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// The authenticated caller.
    pub client_id: String,
    /// The request being answered.
    pub request_id: String,
}

/// A tool described at run time: what `server_identity` lists for it.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDef {
    /// The name to call it by.
    pub name: String,
    /// What it does.
    pub description: String,
    /// JSON Schema of its argument object.
    pub args_schema: serde_json::Value,
}

/// Whether a tool answers at once or runs as a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolKind {
    /// Answers with status `ok`.
    Immediate,
    /// Answers with status `accepted` and a job id; runs in the background.
    LongRunning,
}

type ImmediateFn =
    dyn Fn(Map, CallContext) -> BoxFuture<'static, Result<Map, ToolError>> + Send + Sync;
type JobFn = dyn Fn(Map, JobContext) -> BoxFuture<'static, Result<Map, ToolError>> + Send + Sync;
type SystemFn = dyn Fn(Map, SystemContext) -> BoxFuture<'static, ToolOutcome> + Send + Sync;
type ValidateFn = dyn Fn(&Map) -> Result<(), String> + Send + Sync;

/// What a tool that answers at once produced: the reply's status and result,
/// or the error to sign.
pub type ToolOutcome = Result<(Status, Map), CallError>;

pub(crate) enum Handler {
    Immediate(Box<ImmediateFn>),
    Job(Box<JobFn>),
    /// A system tool: sees the server's state through a [`SystemContext`]
    /// and may be called by every client.
    System(Box<SystemFn>),
}

/// A registered tool.
pub struct Tool {
    name: String,
    /// The name with a static lifetime (interned once per distinct name):
    /// metrics label it without an allocation per request.
    static_name: &'static str,
    description: String,
    schema: serde_json::Value,
    validate: Box<ValidateFn>,
    pub(crate) handler: Handler,
}

impl Tool {
    /// The tool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tool's name with a static lifetime (metrics labels).
    pub fn static_name(&self) -> &'static str {
        self.static_name
    }

    /// The tool's description.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// JSON Schema of the arguments.
    pub fn schema(&self) -> &serde_json::Value {
        &self.schema
    }

    /// Whether every client may call it (the system tools), whatever its
    /// allow-list.
    pub fn is_system(&self) -> bool {
        matches!(self.handler, Handler::System(_))
    }

    /// Immediate or long-running.
    pub fn kind(&self) -> ToolKind {
        match self.handler {
            Handler::Immediate(_) | Handler::System(_) => ToolKind::Immediate,
            Handler::Job(_) => ToolKind::LongRunning,
        }
    }

    /// Checks arguments without running anything (`invalid_args` message on failure).
    pub fn validate(&self, args: &Map) -> Result<(), String> {
        (self.validate)(args)
    }
}

/// Decodes and validates arguments into their type.
/// A typed handler as one over the argument object: the arguments are
/// decoded (and checked) into `A` before it runs, its output encoded.
fn typed<A, O, C, F, Fut>(f: F) -> impl Fn(Map, C) -> BoxFuture<'static, Result<Map, ToolError>>
where
    A: ToolArgs,
    O: Serialize + 'static,
    C: Send + 'static,
    F: Fn(A, C) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, ToolError>> + Send + 'static,
{
    let f = Arc::new(f);
    move |args, ctx| {
        let f = Arc::clone(&f);
        Box::pin(async move {
            let parsed = decode::<A>(&args).map_err(ToolError::InvalidArgs)?;
            encode(&f(parsed, ctx).await?)
        })
    }
}

pub(crate) fn decode<A: ToolArgs>(args: &Map) -> Result<A, String> {
    let parsed: A = lacre_proto::json::de::from_map(args).map_err(|e| e.to_string())?;
    parsed.validate()?;
    Ok(parsed)
}

fn encode<O: Serialize + 'static>(out: &O) -> Result<Map, ToolError> {
    // A handler returning the protocol's own `Map` keeps every value exact
    // (integers beyond 64 bits included); serde would round them to floats.
    if let Some(map) = (out as &dyn std::any::Any).downcast_ref::<Map>() {
        return Ok(map.clone());
    }
    match lacre_proto::json::ser::to_value(out) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(ToolError::failed(format!(
            "tool result must be a json object, got {}",
            other.type_name()
        ))),
        Err(e) => Err(ToolError::failed(format!(
            "tool result cannot be serialized: {e}"
        ))),
    }
}

fn schema_of<A: schemars::JsonSchema>() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(A)).unwrap_or(serde_json::Value::Null)
}

/// The name as a `&'static str`, allocated once per distinct name in the
/// process: tools registered again (an upstream's tools after a change)
/// reuse the first allocation, so the names leaked stay bounded by the
/// names ever seen.
fn intern(name: &str) -> &'static str {
    static NAMES: std::sync::Mutex<std::collections::BTreeSet<&'static str>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut names = NAMES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(known) = names.get(name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(leaked);
    leaked
}

/// The set of tools a server offers.
#[derive(Default, Clone)]
pub struct Registry {
    tools: BTreeMap<String, Arc<Tool>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Registers a tool that answers at once.
    pub fn immediate<A, O, F, Fut>(&mut self, name: &str, description: &str, f: F) -> &mut Self
    where
        A: ToolArgs,
        O: Serialize + 'static,
        F: Fn(A, CallContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, ToolError>> + Send + 'static,
    {
        let handler = Handler::Immediate(Box::new(typed(f)));
        self.insert::<A>(name, description, handler)
    }

    /// Registers a long-running tool: calls answer `accepted` with a job id
    /// and the handler runs in the background with a [`JobContext`].
    pub fn long_running<A, O, F, Fut>(&mut self, name: &str, description: &str, f: F) -> &mut Self
    where
        A: ToolArgs,
        O: Serialize + 'static,
        F: Fn(A, JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, ToolError>> + Send + 'static,
    {
        let handler = Handler::Job(Box::new(typed(f)));
        self.insert::<A>(name, description, handler)
    }

    /// Registers a tool described at run time that answers at once: its
    /// arguments are checked against `def.args_schema` before `f` runs.
    pub fn dynamic_immediate<F, Fut>(
        &mut self,
        def: ToolDef,
        f: F,
    ) -> Result<&mut Self, SchemaError>
    where
        F: Fn(Map, CallContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Map, ToolError>> + Send + 'static,
    {
        let schema = Arc::new(ArgsSchema::compile(&def.name, &def.args_schema)?);
        let check = Arc::clone(&schema);
        let f = Arc::new(f);
        let handler: Box<ImmediateFn> = Box::new(move |args, ctx| {
            let f = Arc::clone(&f);
            let check = Arc::clone(&check);
            Box::pin(async move {
                check.check(&args).map_err(ToolError::InvalidArgs)?;
                f(args, ctx).await
            })
        });
        Ok(self.insert_dynamic(def, schema, Handler::Immediate(handler)))
    }

    /// Registers a long-running tool described at run time: calls answer
    /// `accepted` once the arguments pass `def.args_schema`, and `f` runs
    /// as a job with a [`JobContext`] (progress, cancellation), as typed
    /// long-running tools do.
    pub fn dynamic_long_running<F, Fut>(
        &mut self,
        def: ToolDef,
        f: F,
    ) -> Result<&mut Self, SchemaError>
    where
        F: Fn(Map, JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Map, ToolError>> + Send + 'static,
    {
        let schema = Arc::new(ArgsSchema::compile(&def.name, &def.args_schema)?);
        let f = Arc::new(f);
        let handler: Box<JobFn> = Box::new(move |args, ctx| {
            let f = Arc::clone(&f);
            Box::pin(async move { f(args, ctx).await })
        });
        Ok(self.insert_dynamic(def, schema, Handler::Job(handler)))
    }

    fn insert_dynamic(
        &mut self,
        def: ToolDef,
        schema: Arc<ArgsSchema>,
        handler: Handler,
    ) -> &mut Self {
        let validate: Box<ValidateFn> = Box::new(move |args| schema.check(args));
        self.insert_tool(
            def.name,
            def.description,
            def.args_schema,
            validate,
            handler,
        )
    }

    fn insert<A: ToolArgs>(
        &mut self,
        name: &str,
        description: &str,
        handler: Handler,
    ) -> &mut Self {
        let validate: Box<ValidateFn> = Box::new(|args| decode::<A>(args).map(|_| ()));
        self.insert_tool(
            name.to_owned(),
            description.to_owned(),
            schema_of::<A>(),
            validate,
            handler,
        )
    }

    fn insert_tool(
        &mut self,
        name: String,
        description: String,
        schema: serde_json::Value,
        validate: Box<ValidateFn>,
        handler: Handler,
    ) -> &mut Self {
        let tool = Tool {
            static_name: intern(&name),
            name: name.clone(),
            description,
            schema,
            validate,
            handler,
        };
        self.tools.insert(name, Arc::new(tool));
        self
    }

    /// Registers a system tool (see [`crate::system`]).
    pub(crate) fn system<A, F, Fut>(&mut self, name: &str, description: &str, f: F) -> &mut Self
    where
        A: ToolArgs,
        F: Fn(A, SystemContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ToolOutcome> + Send + 'static,
    {
        let f = Arc::new(f);
        let handler: Box<SystemFn> = Box::new(move |args, ctx| {
            let f = Arc::clone(&f);
            Box::pin(async move {
                let parsed = decode::<A>(&args).map_err(CallError::InvalidArgs)?;
                f(parsed, ctx).await
            })
        });
        self.insert::<A>(name, description, Handler::System(handler))
    }

    /// The tool named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Tool>> {
        self.tools.get(name)
    }

    /// Removes the tool named `name` (a tool whose upstream no longer
    /// offers it); the removed tool, if there was one.
    pub fn remove(&mut self, name: &str) -> Option<Arc<Tool>> {
        self.tools.remove(name)
    }

    /// Every tool, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Tool>> {
        self.tools.values()
    }
}
