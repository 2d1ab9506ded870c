//! The HTTP(S) check and the judgement of a site's `/health` answer.
//!
//! `evaluate` is a pure function of (status, body) so the rules — expected status, body
//! substring, the site report's `status`, `healthy_backends` against `min_healthy` — are tested
//! without sockets, the way sozu tests `is_status_healthy`.

use std::error::Error as _;

use serde_json::Value;

use crate::config::zone::{CheckSpec, MinHealthy};

use super::check::{CheckResult, Observation, Probe};

/// At most this much of a body is read; a health answer is a few hundred bytes.
const MAX_BODY: usize = 64 * 1024;

/// What the check expects of an answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Expect {
    pub(crate) status: u16,
    pub(crate) body: Option<String>,
    pub(crate) min_healthy: Option<MinHealthy>,
}

/// An HTTP(S) GET check.
#[derive(Debug, Clone)]
pub(crate) struct HttpProbe {
    client: reqwest::Client,
    url: String,
    expect: Expect,
}

impl HttpProbe {
    pub(crate) fn new(url: &str, spec: &CheckSpec, client: reqwest::Client) -> Self {
        HttpProbe {
            client,
            url: url.to_string(),
            expect: Expect {
                status: spec.expect_status,
                body: spec.body.clone(),
                min_healthy: spec.min_healthy,
            },
        }
    }
}

impl Probe for HttpProbe {
    async fn check(&self) -> Observation {
        let mut resp = match self.client.get(&self.url).send().await {
            Ok(r) => r,
            Err(e) => return Observation::fail(format!("GET {}: {}", self.url, chain(&e))),
        };
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => {
                    let room = MAX_BODY - body.len();
                    body.extend_from_slice(&c[..c.len().min(room)]);
                    if body.len() == MAX_BODY {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    return Observation::fail(format!(
                        "reading body of {}: {}",
                        self.url,
                        chain(&e)
                    ));
                }
            }
        }
        evaluate(&self.expect, status, &body)
    }
}

/// An error with its sources, `a: b: c` (reqwest's own message omits the cause).
fn chain(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// The site's self-assessment in its `/health` body.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SiteReport {
    pub(crate) status: ReportStatus,
    pub(crate) healthy_backends: Option<u64>,
    pub(crate) total_backends: Option<u64>,
    pub(crate) load: Option<f32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReportStatus {
    Up,
    Draining,
    Down,
}

/// Reads a site report from a body. `Ok(None)`: not a report (any other body, which a plain
/// HTTP check accepts); `Err`: it claims to be one (a JSON object whose `status` is `up`,
/// `draining` or `down`) but a field is malformed.
pub(crate) fn parse_report(body: &[u8]) -> Result<Option<SiteReport>, String> {
    if !body.trim_ascii_start().starts_with(b"{") {
        return Ok(None);
    }
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(body) else {
        return Ok(None);
    };
    let status = match obj.get("status").and_then(Value::as_str) {
        Some("up") => ReportStatus::Up,
        Some("draining") => ReportStatus::Draining,
        Some("down") => ReportStatus::Down,
        _ => return Ok(None),
    };
    let count = |key: &str| match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("{key} is not a count: {v}")),
    };
    let load = match obj.get("load") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_f64() {
            Some(l) if l >= 0.0 && l.is_finite() => Some(l as f32),
            _ => return Err(format!("load is not a number >= 0: {v}")),
        },
    };
    Ok(Some(SiteReport {
        status,
        healthy_backends: count("healthy_backends")?,
        total_backends: count("total_backends")?,
        load,
    }))
}

/// Judges one answer.
pub(crate) fn evaluate(expect: &Expect, status: u16, body: &[u8]) -> Observation {
    let report = match parse_report(body) {
        Ok(r) => r,
        Err(e) => return Observation::fail(format!("bad site report: {e}")),
    };
    let load = report.and_then(|r| r.load);
    let with_load = |mut o: Observation| {
        o.load = load;
        o
    };
    let draining = Observation {
        result: CheckResult::Draining,
        load,
        error: None,
    };
    if status != expect.status {
        // A draining site may answer 503 so that plain checkers drop it; it is still alive.
        if report.is_some_and(|r| r.status == ReportStatus::Draining) {
            return draining;
        }
        return with_load(Observation::fail(format!(
            "status {status}, expected {}",
            expect.status
        )));
    }
    if let Some(needle) = &expect.body
        && !String::from_utf8_lossy(body).contains(needle.as_str())
    {
        return with_load(Observation::fail(format!(
            "body does not contain {needle:?}"
        )));
    }
    let Some(report) = report else {
        return match expect.min_healthy {
            Some(_) => Observation::fail("min_healthy is set but the answer is not a site report"),
            None => Observation::pass(),
        };
    };
    if report.status == ReportStatus::Down {
        return with_load(Observation::fail("site reports down"));
    }
    if let Some(min) = expect.min_healthy
        && let Err(e) = enough_backends(min, &report)
    {
        return with_load(Observation::fail(e));
    }
    match report.status {
        ReportStatus::Draining => draining,
        _ => Observation {
            result: CheckResult::Pass,
            load,
            error: None,
        },
    }
}

/// `Count(n)`: at least n healthy; `Share(s)`: at least ceil(s × total).
fn enough_backends(min: MinHealthy, r: &SiteReport) -> Result<(), String> {
    let healthy = r
        .healthy_backends
        .ok_or("min_healthy is set but the site report has no healthy_backends")?;
    let need = match min {
        MinHealthy::Count(n) => u64::from(n),
        MinHealthy::Share(s) => {
            let total = r
                .total_backends
                .ok_or("min_healthy is a share but the site report has no total_backends")?;
            // The epsilon keeps 0.3 × 10 at 3, not 4.
            (s * total as f64 - 1e-9).ceil().max(0.0) as u64
        }
    };
    if healthy >= need {
        Ok(())
    } else {
        Err(format!("{healthy} healthy backends, need {need}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expect(min: Option<MinHealthy>) -> Expect {
        Expect {
            status: 200,
            body: None,
            min_healthy: min,
        }
    }

    fn report(status: &str, healthy: u64, total: u64, load: f64) -> Vec<u8> {
        format!(
            r#"{{"status":"{status}","healthy_backends":{healthy},"total_backends":{total},"load":{load}}}"#
        )
        .into_bytes()
    }

    #[test]
    fn plain_answers_pass_on_the_expected_status_only() {
        assert_eq!(evaluate(&expect(None), 200, b"ok"), Observation::pass());
        let o = evaluate(&expect(None), 503, b"ok");
        assert_eq!(o.result, CheckResult::Fail);
        assert_eq!(o.error.as_deref(), Some("status 503, expected 200"));
        let e = Expect {
            status: 204,
            ..expect(None)
        };
        assert_eq!(evaluate(&e, 204, b"").result, CheckResult::Pass);
        assert_eq!(evaluate(&e, 200, b"").result, CheckResult::Fail);
        // JSON that is not a site report is a plain body.
        assert_eq!(
            evaluate(&expect(None), 200, br#"{"status":"ok"}"#),
            Observation::pass()
        );
    }

    #[test]
    fn body_substring_is_required_when_configured() {
        let e = Expect {
            body: Some("ALIVE".into()),
            ..expect(None)
        };
        assert_eq!(evaluate(&e, 200, b"I am ALIVE\n").result, CheckResult::Pass);
        let o = evaluate(&e, 200, b"I am alive");
        assert_eq!(o.result, CheckResult::Fail);
        assert!(o.error.unwrap().contains("ALIVE"));
    }

    #[test]
    fn site_report_status_and_load() {
        let o = evaluate(&expect(None), 200, &report("up", 3, 4, 0.25));
        assert_eq!((o.result, o.load), (CheckResult::Pass, Some(0.25)));
        let o = evaluate(&expect(None), 200, &report("draining", 3, 4, 0.5));
        assert_eq!((o.result, o.load), (CheckResult::Draining, Some(0.5)));
        let o = evaluate(&expect(None), 503, &report("draining", 3, 4, 0.5));
        assert_eq!(o.result, CheckResult::Draining);
        let o = evaluate(&expect(None), 200, &report("down", 0, 4, 0.0));
        assert_eq!(o.result, CheckResult::Fail);
        assert_eq!(o.error.as_deref(), Some("site reports down"));
        let o = evaluate(&expect(None), 503, &report("up", 4, 4, 1.5));
        assert_eq!((o.result, o.load), (CheckResult::Fail, Some(1.5)));
        // Fields other than status are optional; extra fields are ignored.
        let o = evaluate(&expect(None), 200, br#"{"status":"up","version":"1.2"}"#);
        assert_eq!((o.result, o.load), (CheckResult::Pass, None));
    }

    #[test]
    fn malformed_reports_fail_loudly() {
        for body in [
            &br#"{"status":"up","load":-1}"#[..],
            br#"{"status":"up","load":"high"}"#,
            br#"{"status":"up","healthy_backends":-2}"#,
            br#"{"status":"up","total_backends":1.5}"#,
        ] {
            let o = evaluate(&expect(None), 200, body);
            assert_eq!(
                o.result,
                CheckResult::Fail,
                "{}",
                String::from_utf8_lossy(body)
            );
            assert!(o.error.unwrap().starts_with("bad site report"));
        }
    }

    #[test]
    fn min_healthy_count_and_share() {
        let count = expect(Some(MinHealthy::Count(2)));
        assert_eq!(
            evaluate(&count, 200, &report("up", 2, 10, 0.0)).result,
            CheckResult::Pass
        );
        let o = evaluate(&count, 200, &report("up", 1, 10, 0.0));
        assert_eq!(o.result, CheckResult::Fail);
        assert_eq!(o.error.as_deref(), Some("1 healthy backends, need 2"));
        let share = expect(Some(MinHealthy::Share(0.3)));
        assert_eq!(
            evaluate(&share, 200, &report("up", 3, 10, 0.0)).result,
            CheckResult::Pass
        );
        assert_eq!(
            evaluate(&share, 200, &report("up", 2, 10, 0.0)).result,
            CheckResult::Fail
        );
        assert_eq!(
            evaluate(&share, 200, &report("up", 1, 3, 0.0)).result,
            CheckResult::Pass
        );
        assert_eq!(
            evaluate(&share, 200, &report("up", 0, 3, 0.0)).result,
            CheckResult::Fail
        );
        // Too few backends while draining is a failure: the site is not healthy.
        assert_eq!(
            evaluate(&count, 200, &report("draining", 1, 10, 0.0)).result,
            CheckResult::Fail
        );
        // min_healthy needs a report.
        assert_eq!(evaluate(&count, 200, b"ok").result, CheckResult::Fail);
        let no_total = br#"{"status":"up","healthy_backends":3}"#;
        assert_eq!(evaluate(&share, 200, no_total).result, CheckResult::Fail);
        assert_eq!(evaluate(&count, 200, no_total).result, CheckResult::Pass);
    }
}
