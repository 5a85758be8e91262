//! Check results: what was asked, what the model expected, what the server answered.

use serde_json::Value;

use crate::client::Transport;

/// Longest request/expected/got text kept in a failure.
const SHOWN: usize = 300;

/// The outcome of one check.
#[derive(Debug, Clone)]
pub struct CheckResult {
    /// method (or notification) checked
    pub method: String,
    /// negotiated protocol version of the session
    pub version: String,
    /// transport of the session
    pub transport: Transport,
    /// scenario step at which it ran
    pub step: String,
    /// failure details; `None` when passed
    pub failure: Option<Failure>,
}

/// Why a check failed (each text truncated).
#[derive(Debug, Clone)]
pub struct Failure {
    /// what was sent
    pub request: String,
    /// what the model expected
    pub expected: String,
    /// what came back
    pub got: String,
}

impl CheckResult {
    /// Whether the check passed.
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }

    /// One line (plus details on failure) for a report.
    pub fn describe(&self) -> String {
        let head = format!(
            "[{} {} {}] {}",
            self.transport, self.version, self.step, self.method
        );
        match &self.failure {
            None => format!("{head}: ok"),
            Some(f) => format!(
                "{head}: FAILED\n    request:  {}\n    expected: {}\n    got:      {}",
                f.request, f.expected, f.got
            ),
        }
    }
}

/// Collects the results of one session.
#[derive(Debug, Clone)]
pub struct Recorder {
    /// protocol version of the session
    pub version: String,
    /// transport of the session
    pub transport: Transport,
    /// current scenario step
    pub step: String,
    /// results so far
    pub results: Vec<CheckResult>,
}

impl Recorder {
    /// An empty recorder for one session.
    pub fn new(version: &str, transport: Transport) -> Self {
        Recorder {
            version: version.to_string(),
            transport,
            step: "start".into(),
            results: Vec::new(),
        }
    }

    /// Records a check: passed when `ok`, else with the three texts.
    pub fn check(&mut self, method: &str, ok: bool, request: &str, expected: &str, got: &str) {
        let failure = (!ok).then(|| Failure {
            request: crate::truncate(request, SHOWN),
            expected: crate::truncate(expected, SHOWN),
            got: crate::truncate(got, SHOWN),
        });
        self.results.push(CheckResult {
            method: method.to_string(),
            version: self.version.clone(),
            transport: self.transport,
            step: self.step.clone(),
            failure,
        });
    }

    /// Records that `got` (a whole response) carries `result == expected`.
    pub fn result_eq(&mut self, method: &str, request: &Value, expected: &Value, got: &Value) {
        let ok = got.get("error").is_none_or(Value::is_null) && got.get("result") == Some(expected);
        self.check(
            method,
            ok,
            &request.to_string(),
            &expected.to_string(),
            &got.to_string(),
        );
    }

    /// Records that `got` is an error with `code`, and with `message` when given.
    pub fn error_is(
        &mut self,
        method: &str,
        request: &Value,
        code: i64,
        message: Option<&str>,
        got: &Value,
    ) {
        let error = got.get("error");
        let ok = error.and_then(|e| e.get("code")).and_then(Value::as_i64) == Some(code)
            && message.is_none_or(|m| {
                error.and_then(|e| e.get("message")).and_then(Value::as_str) == Some(m)
            });
        let expected = match message {
            Some(m) => format!("error {code} {m:?}"),
            None => format!("error {code}"),
        };
        self.check(
            method,
            ok,
            &request.to_string(),
            &expected,
            &got.to_string(),
        );
    }

    /// Records that `got`'s result satisfies `pred`, described by `expected`.
    pub fn result_is(
        &mut self,
        method: &str,
        request: &Value,
        expected: &str,
        got: &Value,
        pred: impl FnOnce(&Value) -> bool,
    ) {
        let ok = got.get("error").is_none_or(Value::is_null) && got.get("result").is_some_and(pred);
        self.check(method, ok, &request.to_string(), expected, &got.to_string());
    }
}

/// Totals of a list of results.
pub fn totals(results: &[CheckResult]) -> (usize, usize) {
    let passed = results.iter().filter(|r| r.passed()).count();
    (passed, results.len() - passed)
}
