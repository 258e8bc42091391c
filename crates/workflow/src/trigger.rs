//! Triggers: what starts a workflow's runs (`manual`, `webhook`,
//! `schedule`), their validation, and the schedule arithmetic the engine's
//! scheduler uses.
//!
//! # Cron dialect
//!
//! Schedules take **5-field** cron expressions (minute, hour, day of month,
//! month, day of week), evaluated by `croner` 2 in the trigger's time zone.
//! A 6-field (seconds) form is refused: the scheduler ticks per minute, and
//! accepting seconds would promise a precision it does not have. Also
//! accepted: lists, ranges, steps, month and weekday names (`JAN`, `MON`),
//! `?` (as `*`), `L`, `W`, `#`, and the nicknames `@yearly`, `@annually`,
//! `@monthly`, `@weekly`, `@daily`, `@hourly`. When both day fields are
//! restricted a day matches if *either* matches (Vixie cron). An expression
//! that can never fire (`0 0 30 2 *`) is refused.
//!
//! # Daylight saving time
//!
//! Times are wall-clock times in the zone. [`Trigger::next_after`]:
//! - a time that does not exist (skipped by a spring-forward change) fires at
//!   the first instant after the gap (`30 2 * * *` in Europe/Berlin on the
//!   last Sunday of March fires at 03:00 CEST); several skipped times collapse
//!   into that one firing;
//! - a time that exists twice (fall-back) fires once, at its first
//!   occurrence; the repeated hour does not fire again, so `0 * * * *` fires
//!   at 02:00 CEST and then at 03:00 CET, two hours apart;
//! - always returns an instant strictly after `after`, so a scheduler that
//!   feeds each firing back in never goes backwards or loops.

use std::str::FromStr;

use chrono::{DateTime, Datelike, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use croner::Cron;
use serde::{Serialize, Serializer};
use serde_json::{json, Map, Value};

use crate::validate::{show, Invalid};

/// Longest cron expression accepted, in bytes.
pub const MAX_CRON_LEN: usize = 200;

/// Time zone of a schedule whose config names none.
pub const DEFAULT_TIMEZONE: &str = "UTC";

/// The trigger kinds, in the order messages list them.
pub const TRIGGER_KINDS: [&str; 3] = ["manual", "webhook", "schedule"];

/// The five cron fields, for messages.
const CRON_FIELDS: [&str; 5] = ["minute", "hour", "day-of-month", "month", "day-of-week"];

/// Upper bound on scheduler search steps in [`Trigger::next_after`]. Each
/// step moves at least one minute forward; only the repeated hour of a
/// fall-back change needs more than one (at most 60).
const MAX_SEARCH_STEPS: usize = 1_500;

/// What starts a workflow's runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum Trigger {
    /// Only the run call starts runs.
    #[default]
    Manual,
    /// A `POST` to the workflow's hook URL starts a run.
    Webhook {
        /// Calls must carry an HMAC-SHA256 signature made with the key the
        /// server generated for this workflow. Never a stored secret: a
        /// signature check keyed with a secret the caller can name is an
        /// oracle that confirms guesses of that secret's value.
        signed: bool,
    },
    /// A cron schedule in a time zone.
    Schedule {
        /// 5-field cron expression (trimmed).
        cron: String,
        /// IANA time zone name, default `UTC`.
        timezone: String,
    },
}

impl Trigger {
    /// `manual`, `webhook` or `schedule` (also the runs' `trigger_type`).
    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::Manual => "manual",
            Trigger::Webhook { .. } => "webhook",
            Trigger::Schedule { .. } => "schedule",
        }
    }

    /// The canonical `{"type": ..., "config": {...}}` form, defaults filled
    /// in (`config` is `{}` for manual and for an unsigned webhook).
    pub fn to_json(&self) -> Value {
        let config = match self {
            Trigger::Manual | Trigger::Webhook { signed: false } => json!({}),
            Trigger::Webhook { signed: true } => json!({ "signed": true }),
            Trigger::Schedule { cron, timezone } => json!({ "cron": cron, "timezone": timezone }),
        };
        json!({ "type": self.kind(), "config": config })
    }

    /// The first firing strictly after `after`, for a schedule trigger;
    /// `None` for other triggers, for a schedule that does not parse (only
    /// possible when built by hand, not through validation), or when no
    /// firing exists before the year 4999. See the module docs for DST.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let Trigger::Schedule { cron, timezone } = self else {
            return None;
        };
        let cron = parse_cron(cron).ok()?;
        let tz = Tz::from_str(timezone).ok()?;
        next_fire(&cron, tz, after)
    }
}

impl Serialize for Trigger {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

/// Validates a trigger object. `None` and `null` mean manual (the default
/// for a new workflow).
pub fn validate_trigger(trigger: Option<&Value>) -> Result<Trigger, Invalid> {
    let trigger = match trigger {
        None | Some(Value::Null) => return Ok(Trigger::Manual),
        Some(Value::Object(map)) => map,
        Some(_) => return Err(Invalid::root("trigger", "trigger must be an object")),
    };
    let kind = match trigger.get("type") {
        None | Some(Value::Null) => return Err(Invalid::root("trigger.type", "trigger.type is required")),
        Some(Value::String(kind)) => kind.as_str(),
        Some(_) => return Err(Invalid::root("trigger.type", "trigger.type must be a string")),
    };
    if !TRIGGER_KINDS.contains(&kind) {
        return Err(Invalid::root(
            "trigger.type",
            format!(
                "trigger.type {} is not supported; supported types: {}",
                show(kind),
                TRIGGER_KINDS.join(", ")
            ),
        ));
    }
    if let Some(key) = trigger.keys().find(|k| *k != "type" && *k != "config") {
        return Err(Invalid::root(
            format!("trigger.{key}"),
            format!(
                "trigger has unknown key {}; a trigger has type and config",
                show(key)
            ),
        ));
    }
    let empty = Map::new();
    let config = match trigger.get("config") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(map)) => map,
        Some(_) => {
            return Err(Invalid::root(
                "trigger.config",
                "trigger.config must be an object",
            ))
        }
    };
    let allowed: &[&str] = match kind {
        "webhook" => &["signed"],
        "schedule" => &["cron", "timezone"],
        _ => &[],
    };
    if kind == "webhook" && config.contains_key("signing_secret") {
        return Err(Invalid::root(
            "trigger.config.signing_secret",
            "trigger.config.signing_secret is not accepted: the server generates each workflow's \
             signing key; set trigger.config.signed to true and read webhook_signing_key from the \
             create, update or rotate response",
        ));
    }
    if let Some(key) = config.keys().find(|k| !allowed.contains(&k.as_str())) {
        let rule = if allowed.is_empty() {
            format!("{kind} triggers take no config")
        } else {
            format!("{kind} trigger config keys are {}", allowed.join(", "))
        };
        return Err(Invalid::root(
            format!("trigger.config.{key}"),
            format!("trigger.config has unknown key {}; {rule}", show(key)),
        ));
    }
    match kind {
        "webhook" => webhook_trigger(config),
        "schedule" => schedule_trigger(config),
        _ => Ok(Trigger::Manual),
    }
}

fn webhook_trigger(config: &Map<String, Value>) -> Result<Trigger, Invalid> {
    const FIELD: &str = "trigger.config.signed";
    let signed = match config.get("signed") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(signed)) => *signed,
        Some(_) => return Err(Invalid::root(FIELD, format!("{FIELD} must be true or false"))),
    };
    Ok(Trigger::Webhook { signed })
}

fn schedule_trigger(config: &Map<String, Value>) -> Result<Trigger, Invalid> {
    const CRON: &str = "trigger.config.cron";
    const TZ: &str = "trigger.config.timezone";
    let cron = match config.get("cron") {
        None | Some(Value::Null) => return Err(Invalid::root(CRON, format!("{CRON} is required"))),
        Some(Value::String(cron)) => cron.trim(),
        Some(_) => return Err(Invalid::root(CRON, format!("{CRON} must be a string"))),
    };
    let parsed = parse_cron(cron).map_err(|why| {
        Invalid::root(
            CRON,
            format!(
                "{CRON} {} is not a valid 5-field cron expression: {why}",
                show(cron)
            ),
        )
    })?;
    let tz = match config.get("timezone") {
        None | Some(Value::Null) => Tz::UTC,
        Some(Value::String(name)) => Tz::from_str(name).map_err(|_| {
            Invalid::root(
                TZ,
                format!(
                    "{TZ} {} is not a known IANA time zone name (e.g. \"Europe/Berlin\", \"UTC\")",
                    show(name)
                ),
            )
        })?,
        Some(_) => return Err(Invalid::root(TZ, format!("{TZ} must be a string"))),
    };
    // Searched in UTC from a fixed instant so the answer does not depend on
    // the clock: a pattern that fires at all fires within a few years of any
    // date (the pattern repeats at least every 28 years in the Gregorian
    // calendar when it can match at all).
    if next_fire(&parsed, Tz::UTC, reference_instant()).is_none() {
        return Err(Invalid::root(CRON, format!("{CRON} {} never fires", show(cron))));
    }
    Ok(Trigger::Schedule {
        cron: cron.to_owned(),
        timezone: tz.name().to_owned(),
    })
}

/// 2000-01-01T00:00:00Z, the start of the "does it ever fire" search.
fn reference_instant() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(946_684_800, 0).unwrap_or_default()
}

/// Parses a 5-field expression or nickname; the error says what is wrong,
/// naming the field when one can be singled out.
pub(crate) fn parse_cron(expr: &str) -> Result<Cron, String> {
    let expr = expr.trim();
    if expr.is_empty() {
        return Err("it is empty".into());
    }
    if expr.len() > MAX_CRON_LEN {
        return Err(format!("it is longer than {MAX_CRON_LEN} bytes"));
    }
    if expr.starts_with('@') {
        // croner leaves an unknown nickname as is, and then reports a
        // field-count error; say what is actually wrong instead.
        const NICKNAMES: [&str; 6] = ["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@hourly"];
        if !NICKNAMES.iter().any(|n| n.eq_ignore_ascii_case(expr)) {
            return Err(format!("unknown nickname; use one of {}", NICKNAMES.join(", ")));
        }
        return Cron::new(expr).parse().map_err(|e| e.to_string());
    }
    let fields: Vec<&str> = expr.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "it has {} field{}; expected 5 ({})",
            fields.len(),
            if fields.len() == 1 { "" } else { "s" },
            CRON_FIELDS.join(" ")
        ));
    }
    Cron::new(expr).parse().map_err(|whole| {
        // Re-parse each field alone (the others `*`) to name the bad one.
        for (i, field) in fields.iter().enumerate() {
            let mut probe = ["*"; 5];
            probe[i] = field;
            if let Err(e) = Cron::new(&probe.join(" ")).parse() {
                return format!("{} field {}: {e}", CRON_FIELDS[i], show(field));
            }
        }
        whole.to_string()
    })
}

/// Next firing strictly after `after`, in UTC. Works on whole seconds (the
/// pattern fires on second 0 of a minute).
fn next_fire(cron: &Cron, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    // croner stops searching at the year 5000 but can do unchecked date
    // arithmetic close to chrono's limits; stay far from them.
    if !(1..4999).contains(&after.year()) {
        return None;
    }
    let after = after.with_nanosecond(0)?;
    let mut from = tz.from_utc_datetime(&after.naive_utc());
    for _ in 0..MAX_SEARCH_STEPS {
        let next = cron.find_next_occurrence(&from, false).ok()?;
        let utc = next.with_timezone(&Utc);
        // In a fall-back hour croner resolves an ambiguous wall time to its
        // first (earlier) instant, which can lie before `after` when `after`
        // is in the second pass of that hour: keep searching forward.
        if utc > after {
            return Some(utc);
        }
        from = next;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn schedule(cron: &str, tz: &str) -> Trigger {
        validate_trigger(Some(
            &json!({"type": "schedule", "config": {"cron": cron, "timezone": tz}}),
        ))
        .unwrap_or_else(|e| panic!("{cron} {tz}: {e}"))
    }

    #[test]
    fn every_five_minutes_utc() {
        let t = schedule("*/5 * * * *", "UTC");
        assert_eq!(
            t.next_after(at("2026-06-01T10:00:00Z")),
            Some(at("2026-06-01T10:05:00Z"))
        );
        assert_eq!(
            t.next_after(at("2026-06-01T10:02:59.9Z")),
            Some(at("2026-06-01T10:05:00Z"))
        );
        assert_eq!(
            t.next_after(at("2026-06-01T10:04:59.999Z")),
            Some(at("2026-06-01T10:05:00Z"))
        );
    }

    #[test]
    fn wall_clock_follows_the_zone_offset() {
        let t = schedule("0 9 * * *", "Europe/Berlin");
        // CEST (UTC+2) in summer, CET (UTC+1) in winter.
        assert_eq!(
            t.next_after(at("2026-06-01T00:00:00Z")),
            Some(at("2026-06-01T07:00:00Z"))
        );
        assert_eq!(
            t.next_after(at("2026-12-01T00:00:00Z")),
            Some(at("2026-12-01T08:00:00Z"))
        );
        // Across the spring change (2026-03-29): the day before in CET, the
        // day itself in CEST.
        assert_eq!(
            t.next_after(at("2026-03-28T09:00:00Z")),
            Some(at("2026-03-29T07:00:00Z"))
        );
    }

    #[test]
    fn spring_forward_gap_fires_once_after_the_gap() {
        // Europe/Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00Z).
        let t = schedule("30 2 * * *", "Europe/Berlin");
        let first = t.next_after(at("2026-03-28T23:00:00Z"));
        assert_eq!(first, Some(at("2026-03-29T01:00:00Z")), "03:00 CEST");
        let second = first.and_then(|f| t.next_after(f));
        assert_eq!(second, Some(at("2026-03-30T00:30:00Z")), "02:30 CEST next day");

        // Every 15 minutes: 01:45 CET, then the skipped 02:xx collapse into
        // 03:00 CEST, then 03:15.
        let t = schedule("*/15 * * * *", "Europe/Berlin");
        let mut seen = vec![];
        let mut cur = at("2026-03-29T00:30:00Z");
        for _ in 0..4 {
            cur = t.next_after(cur).expect("fires");
            seen.push(cur);
        }
        assert_eq!(
            seen,
            [
                at("2026-03-29T00:45:00Z"),
                at("2026-03-29T01:00:00Z"),
                at("2026-03-29T01:15:00Z"),
                at("2026-03-29T01:30:00Z"),
            ]
        );
    }

    #[test]
    fn fall_back_repeated_hour_fires_once() {
        // Europe/Berlin, 2026-10-25: 03:00 CEST (01:00Z) goes back to 02:00 CET.
        let t = schedule("30 2 * * *", "Europe/Berlin");
        let first = t.next_after(at("2026-10-24T22:00:00Z")).expect("fires");
        assert_eq!(first, at("2026-10-25T00:30:00Z"), "02:30 CEST, first pass");
        assert_eq!(
            t.next_after(first),
            Some(at("2026-10-26T01:30:00Z")),
            "not again at 02:30 CET"
        );

        let hourly = schedule("0 * * * *", "Europe/Berlin");
        assert_eq!(
            hourly.next_after(at("2026-10-24T23:30:00Z")),
            Some(at("2026-10-25T00:00:00Z"))
        );
        assert_eq!(
            hourly.next_after(at("2026-10-25T00:00:00Z")),
            Some(at("2026-10-25T02:00:00Z"))
        );
    }

    #[test]
    fn inside_the_second_pass_never_goes_backwards() {
        // 01:10Z is 02:10 CET, the second 02:10 of the night; croner's first
        // answer (02:11 CEST = 00:11Z) is earlier and must be skipped.
        let t = schedule("* * * * *", "Europe/Berlin");
        let after = at("2026-10-25T01:10:00Z");
        let next = t.next_after(after).expect("fires");
        assert!(next > after, "{next} > {after}");
        assert_eq!(next, at("2026-10-25T02:00:00Z"));
    }

    #[test]
    fn next_after_is_none_for_other_triggers_and_far_dates() {
        assert_eq!(Trigger::Manual.next_after(at("2026-01-01T00:00:00Z")), None);
        let hook = Trigger::Webhook { signed: false };
        assert_eq!(hook.next_after(at("2026-01-01T00:00:00Z")), None);
        let t = schedule("0 0 1 1 *", "UTC");
        assert_eq!(t.next_after(DateTime::<Utc>::MAX_UTC), None);
        assert_eq!(t.next_after(DateTime::<Utc>::MIN_UTC), None);
        let bad = Trigger::Schedule {
            cron: "nope".into(),
            timezone: "UTC".into(),
        };
        assert_eq!(bad.next_after(at("2026-01-01T00:00:00Z")), None);
    }

    #[test]
    fn leap_day_schedule_fires_in_leap_years() {
        let t = schedule("0 0 29 2 *", "UTC");
        assert_eq!(
            t.next_after(at("2026-01-01T00:00:00Z")),
            Some(at("2028-02-29T00:00:00Z"))
        );
    }

    #[test]
    fn cron_field_errors_name_the_field() {
        let err = parse_cron("61 * * * *").expect_err("minute 61");
        assert!(err.starts_with("minute field \"61\""), "{err}");
        let err = parse_cron("* * * 13 *").expect_err("month 13");
        assert!(err.starts_with("month field \"13\""), "{err}");
        let err = parse_cron("0 0 * * * *").expect_err("6 fields");
        assert!(err.contains("it has 6 fields; expected 5"), "{err}");
        assert!(parse_cron("@daily").is_ok());
        assert!(parse_cron("@DAILY").is_ok());
        assert!(parse_cron("0 9 * * MON-FRI").is_ok());
        assert!(parse_cron("@reboot")
            .expect_err("reboot")
            .contains("unknown nickname"));
    }
}
