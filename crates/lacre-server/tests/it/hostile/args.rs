//! Tool arguments: schemas, ranges, ownership of jobs.

use super::*;

/// Arguments that violate each built-in tool's schema, and jobs of others.
pub(super) fn args_cases(t: &mut Table, others_job: &str) {
    let cases: [(&str, &str); 56] = [
        ("batch_sum", "{}"),
        ("batch_sum", r#"{"numbers":[]}"#),
        ("batch_sum", r#"{"numbers":["1"]}"#),
        ("batch_sum", r#"{"numbers":[1,"2"]}"#),
        ("batch_sum", r#"{"numbers":[true]}"#),
        ("batch_sum", r#"{"numbers":[[1]]}"#),
        ("batch_sum", r#"{"numbers":[null]}"#),
        ("batch_sum", r#"{"numbers":[{}]}"#),
        ("batch_sum", r#"{"numbers":null}"#),
        ("batch_sum", r#"{"numbers":5}"#),
        ("batch_sum", r#"{"numbers":"1,2"}"#),
        ("batch_sum", r#"{"numbers":{"a":1}}"#),
        ("batch_sum", r#"{"numbers":[1],"extra":1}"#),
        ("batch_sum", r#"{"Numbers":[1]}"#),
        ("batch_sum", r#"{"numbers":[1e308,1e308]}"#),
        ("batch_sum", r#"{"numbers":[-1e308,-1e308]}"#),
        ("batch_sum", r#"{"numbers":[1.7976931348623157e308,1e292]}"#),
        ("start_long_task", "{}"),
        ("start_long_task", r#"{"seconds":0}"#),
        ("start_long_task", r#"{"seconds":21}"#),
        ("start_long_task", r#"{"seconds":-1}"#),
        ("start_long_task", r#"{"seconds":1.5}"#),
        ("start_long_task", r#"{"seconds":2.0}"#),
        ("start_long_task", r#"{"seconds":"1"}"#),
        ("start_long_task", r#"{"seconds":true}"#),
        ("start_long_task", r#"{"seconds":null}"#),
        ("start_long_task", r#"{"seconds":18446744073709551617}"#),
        ("start_long_task", r#"{"seconds":1,"payload":[1]}"#),
        ("start_long_task", r#"{"seconds":1,"payload":"x"}"#),
        ("start_long_task", r#"{"seconds":1,"payload":1}"#),
        ("start_long_task", r#"{"seconds":1,"extra":1}"#),
        ("poll_job", "{}"),
        ("poll_job", r#"{"job_id":5}"#),
        ("poll_job", r#"{"job_id":null}"#),
        ("poll_job", r#"{"job_id":["x"]}"#),
        ("poll_job", r#"{"job_id":"x","wait_ms":30001}"#),
        ("poll_job", r#"{"job_id":"x","wait_ms":-1}"#),
        ("poll_job", r#"{"job_id":"x","wait_ms":"10"}"#),
        ("poll_job", r#"{"job_id":"x","wait_ms":1.5}"#),
        ("poll_job", r#"{"job_id":"x","extra":1}"#),
        ("cancel_job", "{}"),
        ("cancel_job", r#"{"job_id":5}"#),
        ("cancel_job", r#"{"job_id":null}"#),
        ("cancel_job", r#"{"job_id":"x","wait_ms":1}"#),
        ("list_jobs", r#"{"state":"sleeping"}"#),
        ("list_jobs", r#"{"state":"DONE"}"#),
        ("list_jobs", r#"{"state":""}"#),
        ("list_jobs", r#"{"state":1}"#),
        ("list_jobs", r#"{"limit":0}"#),
        ("list_jobs", r#"{"limit":1001}"#),
        ("list_jobs", r#"{"limit":-1}"#),
        ("list_jobs", r#"{"limit":"10"}"#),
        ("list_jobs", r#"{"limit":1.5}"#),
        ("list_jobs", r#"{"extra":1}"#),
        ("server_identity", r#"{"x":1}"#),
        ("server_identity", r#"{"verbose":null}"#),
    ];
    // lax_integers: an integer too large for a float is no string.
    let digits = "9".repeat(401);
    for tool in ["poll_job", "cancel_job"] {
        let e = make(tool, &format!(r#"{{"job_id":{digits}}}"#), |_| {});
        t.refuse(
            format!("args/{tool} with a 401-digit job_id"),
            &e,
            422,
            ErrorCode::InvalidArgs,
        );
    }
    for (tool, args) in cases {
        let e = make(tool, args, |_| {});
        t.refuse(
            format!("args/{tool} {args}"),
            &e,
            422,
            ErrorCode::InvalidArgs,
        );
    }
    // The accepted side of the ranges.
    for (tool, args) in [
        ("list_jobs", r#"{"limit":1}"#),
        ("list_jobs", r#"{"limit":1000}"#),
        ("list_jobs", r#"{"limit":null,"state":null}"#),
        ("list_jobs", r#"{"state":"cancelled"}"#),
        ("batch_sum", r#"{"numbers":[1.7976931348623157e308]}"#),
    ] {
        let e = make(tool, args, |_| {});
        t.accept(format!("args accepted/{tool} {args}"), &e);
    }
    for (tool, args) in [
        ("start_long_task", r#"{"seconds":1}"#),
        ("start_long_task", r#"{"seconds":20,"payload":{}}"#),
    ] {
        let e = make(tool, args, |_| {});
        let expect = Expect::Success {
            http: 202,
            status: Status::Accepted,
            request_id: e.request_id.clone(),
        };
        t.add(format!("args accepted/{tool} {args}"), e.to_json(), expect);
    }

    // Tools that do not exist or are not allowed.
    let e = make("no_such_tool", "{}", |_| {});
    t.refuse("tool/unknown tool", &e, 404, ErrorCode::UnknownTool);
    let e = make("Batch_Sum", r#"{"numbers":[1]}"#, |_| {});
    t.refuse(
        "tool/tool name in another case",
        &e,
        404,
        ErrorCode::UnknownTool,
    );
    let e = make("start_long_task", r#"{"seconds":1}"#, |e| {
        e.client_id = "client-002".into()
    });
    t.refuse("tool/forbidden tool", &e, 403, ErrorCode::ForbiddenTool);
    let e = make("no_such_tool", "{}", |e| e.client_id = "client-002".into());
    t.refuse(
        "tool/restricted client, missing tool: forbidden",
        &e,
        403,
        ErrorCode::ForbiddenTool,
    );
    let e = make("start_long_task", r#"{"seconds":"bad"}"#, |e| {
        e.client_id = "client-002".into()
    });
    t.refuse(
        "tool/forbidden before invalid args",
        &e,
        403,
        ErrorCode::ForbiddenTool,
    );

    // Jobs: another client's job is unknown to it.
    let args = format!(
        r#"{{"job_id":{}}}"#,
        String::from_utf8(q(others_job)).unwrap()
    );
    for tool in ["poll_job", "cancel_job"] {
        let e = make(tool, &args, |e| e.client_id = "client-002".into());
        t.refuse(
            format!("jobs/{tool} of another client's job"),
            &e,
            404,
            ErrorCode::UnknownJob,
        );
        let e = make(tool, r#"{"job_id":"no-such-job"}"#, |_| {});
        t.refuse(
            format!("jobs/{tool} of a job that does not exist"),
            &e,
            404,
            ErrorCode::UnknownJob,
        );
    }
    let e = make(
        "poll_job",
        r#"{"job_id":"no-such-job","wait_ms":null}"#,
        |_| {},
    );
    t.refuse(
        "jobs/poll_job with wait_ms null",
        &e,
        404,
        ErrorCode::UnknownJob,
    );
    let e = make(
        "poll_job",
        &format!(r#"{{"job_id":"{}"}}"#, others_job.to_uppercase()),
        |_| {},
    );
    t.refuse(
        "jobs/poll_job of the job id in uppercase",
        &e,
        404,
        ErrorCode::UnknownJob,
    );
    // Its owner still sees it, cancels it, and then polls a cancelled job.
    let e = make("poll_job", &args, |_| {});
    let expect = Expect::Success {
        http: 200,
        status: Status::Running,
        request_id: e.request_id.clone(),
    };
    t.add("jobs/owner polls its job", e.to_json(), expect);
    let e = make("cancel_job", &args, |_| {});
    t.accept("jobs/owner cancels its job", &e);
    let e = make("poll_job", &args, |_| {});
    t.refuse(
        "jobs/owner polls its cancelled job",
        &e,
        200,
        ErrorCode::JobCancelled,
    );
}
