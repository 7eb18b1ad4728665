//! Validation of the webhook settings: a client's `webhook_*` fields and
//! the `[webhooks]` table.

use super::file::{ClientSpec, WebhooksSpec};
use super::{ConfigError, Ctx};
use crate::webhooks::{parse_delay, Endpoint, EventMask, EventType, WebhookSettings};
use lacre_proto::webhook::WebhookKey;
use std::time::Duration;
use toml::Spanned;

fn line_of<T>(ctx: &Ctx, v: &Spanned<T>) -> Option<usize> {
    Some(ctx.line_of(v.span().start))
}

/// Most secrets one endpoint is signed with at once (a rotation).
const MAX_SECRETS: usize = 3;

/// A client's endpoint, or `None` when it has no `webhook_url`.
pub(super) fn endpoint(ctx: &Ctx, c: &ClientSpec) -> Result<Option<Endpoint>, ConfigError> {
    let id = c.id.get_ref();
    let sources = [
        c.webhook_secret.as_ref().map(|s| line_of(ctx, s)),
        c.webhook_secret_env.as_ref().map(|s| line_of(ctx, s)),
        c.webhook_secret_file.as_ref().map(|s| line_of(ctx, s)),
    ];
    let Some(url) = &c.webhook_url else {
        if let Some(at) = sources
            .iter()
            .flatten()
            .next()
            .copied()
            .or_else(|| c.webhook_events.as_ref().map(|e| line_of(ctx, e)))
        {
            return Err(ctx.err(
                at,
                format!("client {id:?} has webhook settings but no webhook_url"),
                "add webhook_url = \"https://...\" or remove the webhook_* fields",
            ));
        }
        return Ok(None);
    };
    let at = line_of(ctx, url);
    let parsed = reqwest::Url::parse(url.get_ref()).map_err(|e| {
        ctx.err(
            at,
            format!("webhook_url {:?} is not a URL: {e}", url.get_ref()),
            "write it as \"https://agent.example.com/hooks/lacre\"",
        )
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(ctx.err(
            at,
            format!(
                "webhook_url {:?} must be an http or https URL with a host",
                url.get_ref()
            ),
            "write it as \"https://agent.example.com/hooks/lacre\"",
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(ctx.err(
            at,
            "webhook_url must not carry a user name or password",
            "the receiver checks the signature instead; remove the user-info part",
        ));
    }
    if sources.iter().flatten().count() != 1 {
        return Err(ctx.err(
            sources.iter().flatten().nth(1).copied().flatten().or(at),
            format!("client {id:?} needs exactly one of webhook_secret, webhook_secret_env, webhook_secret_file"),
            "generate one with `lacre webhook secret` and set webhook_secret_file = \"client.whsec\"",
        ));
    }
    let (text, secret_at) = if let Some(s) = &c.webhook_secret {
        (s.get_ref().clone(), line_of(ctx, s))
    } else if let Some(var) = &c.webhook_secret_env {
        (ctx.env_value(var, "whsec_...")?, line_of(ctx, var))
    } else if let Some(file) = &c.webhook_secret_file {
        (ctx.file_text(file)?, line_of(ctx, file))
    } else {
        return Err(ctx.err(at, "internal: no webhook secret source", ""));
    };
    // Several secrets, separated by white space, while the receiver
    // rotates: each signs a `v1` entry.
    let mut secrets = Vec::new();
    for word in text.split_whitespace() {
        match WebhookKey::parse(word) {
            Ok(WebhookKey::Secret(s)) if s.len() >= 16 => secrets.push(s),
            _ => {
                return Err(ctx.err(
                    secret_at,
                    format!("client {id:?}: a webhook secret must be whsec_ and the base64 of at least 16 bytes"),
                    "generate one with `lacre webhook secret`",
                ))
            }
        }
    }
    if secrets.is_empty() || secrets.len() > MAX_SECRETS {
        return Err(ctx.err(
            secret_at,
            format!("client {id:?} needs 1 to {MAX_SECRETS} webhook secrets"),
            "give the current secret (and, while the receiver rotates, the next one)",
        ));
    }
    let events = match &c.webhook_events {
        None => EventMask::ALL,
        Some(list) => {
            let mut events = Vec::new();
            for name in list.get_ref() {
                match EventType::parse(name) {
                    Some(e) => events.push(e),
                    None => {
                        return Err(ctx.err(
                            line_of(ctx, list),
                            format!("webhook_events: {name:?} is not an event lacre sends"),
                            "use some of \"job.done\", \"job.failed\", \"job.cancelled\"",
                        ))
                    }
                }
            }
            if events.is_empty() {
                return Err(ctx.err(
                    line_of(ctx, list),
                    "webhook_events is empty: nothing would be sent",
                    "list at least one event, or remove webhook_url",
                ));
            }
            EventMask::of(&events)
        }
    };
    Ok(Some(Endpoint {
        url: parsed,
        secrets,
        events,
    }))
}

/// The `[webhooks]` table.
pub(super) fn settings(ctx: &Ctx, w: &WebhooksSpec) -> Result<WebhookSettings, ConfigError> {
    let defaults = WebhookSettings::default();
    let timeout = match &w.timeout_ms {
        None => defaults.timeout,
        Some(t) if (100..=300_000).contains(t.get_ref()) => Duration::from_millis(*t.get_ref()),
        Some(t) => {
            return Err(ctx.err(
                line_of(ctx, t),
                format!("timeout_ms = {} is out of range", t.get_ref()),
                "use 100 to 300000 ms (default 15000)",
            ))
        }
    };
    let schedule = match &w.schedule {
        None => defaults.schedule,
        Some(list) => {
            let at = line_of(ctx, list);
            let mut delays = Vec::new();
            for s in list.get_ref() {
                delays.push(parse_delay(s).ok_or_else(|| {
                    ctx.err(
                        at,
                        format!("schedule: {s:?} is not a delay of at most 24h"),
                        "write delays as \"0s\", \"250ms\", \"5m\", \"2h\"",
                    )
                })?);
            }
            if delays.first() != Some(&Duration::ZERO) || delays.len() > 50 {
                return Err(ctx.err(
                    at,
                    "schedule: the first entry is the first attempt, \"0s\", and there are at most 50",
                    "start the schedule with \"0s\"",
                ));
            }
            delays
        }
    };
    let concurrency = match &w.concurrency {
        None => defaults.concurrency,
        Some(n) if (1..=256).contains(n.get_ref()) => *n.get_ref(),
        Some(n) => {
            return Err(ctx.err(
                line_of(ctx, n),
                format!("concurrency = {} is out of range", n.get_ref()),
                "use 1 to 256 (default 8)",
            ))
        }
    };
    Ok(WebhookSettings {
        allow_private_targets: w.allow_private_targets.unwrap_or(false),
        timeout,
        schedule,
        concurrency,
        ..defaults
    })
}

#[cfg(test)]
mod tests {
    use crate::config::Settings;
    use crate::webhooks::{EventMask, EventType};
    use std::path::Path;
    use std::time::Duration;

    const HEAD: &str =
        "server_id = \"s\"\n[signing]\nsecret = \"x\"\n[[clients]]\nid = \"a\"\nsecret = \"k\"\n";

    fn parse(tail: &str) -> Result<Settings, crate::config::ConfigError> {
        Settings::parse(Path::new("c.toml"), &format!("{HEAD}{tail}"))
    }

    #[test]
    fn the_issue_example_loads() {
        let s = parse(
            "webhook_url = \"https://agent.example.com/hooks/lacre\"\n\
             webhook_secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\n\
             webhook_events = [\"job.done\", \"job.failed\"]\n\
             [webhooks]\nallow_private_targets = true\ntimeout_ms = 2000\nschedule = [\"0s\", \"250ms\", \"1m\"]\n",
        )
        .unwrap();
        let w = s.clients[0].webhook.as_ref().expect("an endpoint");
        assert_eq!(w.url.as_str(), "https://agent.example.com/hooks/lacre");
        assert_eq!(w.secrets.len(), 1);
        assert_eq!(
            w.events,
            EventMask::of(&[EventType::Done, EventType::Failed])
        );
        assert!(s.webhooks.allow_private_targets);
        assert_eq!(s.webhooks.timeout, Duration::from_secs(2));
        assert_eq!(
            s.webhooks.schedule,
            [
                Duration::ZERO,
                Duration::from_millis(250),
                Duration::from_secs(60)
            ]
        );
        // Defaults: every event, the issue's schedule, private targets refused.
        let s = parse("webhook_url = \"https://h/x\"\nwebhook_secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\n").unwrap();
        assert_eq!(
            s.clients[0].webhook.as_ref().map(|w| w.events),
            Some(EventMask::ALL)
        );
        assert!(!s.webhooks.allow_private_targets);
        assert_eq!(s.webhooks.schedule.len(), 10);
    }

    #[test]
    fn mistakes_are_located() {
        let cases: &[(&str, usize, &str)] = &[
            ("webhook_secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\n", 7, "no webhook_url"),
            ("webhook_url = \"ftp://h/x\"\nwebhook_secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\n", 7, "http or https"),
            ("webhook_url = \"https://u:p@h/x\"\nwebhook_secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\n", 7, "user name"),
            ("webhook_url = \"https://h/x\"\n", 7, "exactly one of webhook_secret"),
            ("webhook_url = \"https://h/x\"\nwebhook_secret = \"whsec_AAAA\"\n", 8, "at least 16 bytes"),
            ("webhook_url = \"https://h/x\"\nwebhook_secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\nwebhook_events = [\"job.progress\"]\n", 9, "\"job.progress\" is not an event"),
            ("webhook_url = \"https://h/x\"\nwebhook_secret_env = \"LACRE_TEST_NO_SUCH_VAR\"\n", 8, "is not set"),
            ("[webhooks]\nschedule = [\"5s\"]\n", 8, "first entry"),
            ("[webhooks]\nschedule = [\"0s\", \"2d\"]\n", 8, "at most 24h"),
            ("[webhooks]\ntimeout_ms = 5\n", 8, "out of range"),
        ];
        for (tail, line, words) in cases {
            let e = parse(tail).unwrap_err();
            assert!(e.message.contains(words), "{tail}: {e}");
            assert_eq!(e.line, Some(*line), "{tail}: {e}");
        }
    }

    #[test]
    fn two_secrets_sign_while_a_receiver_rotates() {
        let s = parse("webhook_url = \"https://h/x\"\nwebhook_secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24=\"\n").unwrap();
        assert_eq!(
            s.clients[0].webhook.as_ref().map(|w| w.secrets.len()),
            Some(2)
        );
        let e = parse("webhook_url = \"https://h/x\"\nwebhook_secret = \"   \"\n").unwrap_err();
        assert!(e.message.contains("1 to 3 webhook secrets"), "{e}");
    }

    #[test]
    fn the_secret_may_come_from_a_file() {
        let dir = std::env::temp_dir().join(format!("lacre-whsec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("a.whsec"),
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n",
        )
        .unwrap();
        let text =
            format!("{HEAD}webhook_url = \"https://h/x\"\nwebhook_secret_file = \"a.whsec\"\n");
        let s = Settings::parse(&dir.join("c.toml"), &text).unwrap();
        assert!(s.clients[0].webhook.is_some());
        let _ = std::fs::remove_dir_all(dir);
    }
}
