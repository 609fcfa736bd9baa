//! A CronJob's `schedule` and `timeZone`, read as Kubernetes reads them.
//!
//! Kubernetes parses schedules with robfig/cron's standard parser: five fields (minute,
//! hour, day of month, month, day of week; names such as `JAN` and `MON` allowed), or one
//! of the descriptors `@yearly`/`@annually`, `@monthly`, `@weekly`, `@daily`/`@midnight`,
//! `@hourly`. croner reads a superset (seconds, years, `L`, `W`, `#`), so the syntax is
//! checked here first and a schedule Kubernetes would refuse is refused with a reason.
//! `@every <duration>` is refused too: it counts from the controller's start, not from the
//! clock, so two controller managers would disagree about it.
//!
//! # Time zones
//! `spec.timeZone` names an IANA zone, looked up in the system's tz database through
//! jiff (`/usr/share/zoneinfo`); absent means UTC, as in Kubernetes (whose controller
//! manager runs in UTC). croner computes with chrono times, so [`Zone`] presents a jiff
//! zone as a chrono `TimeZone`; croner then handles daylight-saving gaps and folds itself
//! (a `30 2 * * *` schedule runs once on the night the clocks skip 02:30).
//!
//! Worked example: `0 9 * * MON-FRI` with `timeZone: Europe/Paris` fires at 08:00Z in
//! winter and 07:00Z in summer; the Job made for Monday 2026-01-05 is named
//! `<cronjob>-29460000` (minutes since the epoch) and annotated
//! `batch.kubernetes.io/cronjob-scheduled-timestamp: 2026-01-05T09:00:00+01:00`.

use chrono::{DateTime, FixedOffset, MappedLocalTime, NaiveDate, NaiveDateTime, NaiveTime};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::Timestamp;
use jiff::tz::{AmbiguousOffset, TimeZone};

/// Past this many missed start times Kubernetes warns (`TooManyMissedTimes`) and suggests
/// `startingDeadlineSeconds`; counting stops there so a long-stopped controller does not
/// walk years of minutes.
pub(super) const MISSED_WARNING_THRESHOLD: usize = 100;

/// A parsed schedule in its zone.
#[derive(Debug, Clone)]
pub(super) struct Schedule {
    cron: Cron,
    zone: Zone,
}

/// What the schedule says about the window `(after, now]`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Missed {
    /// The latest start time in the window: the one a Job is made for.
    pub most_recent: Option<Timestamp>,
    /// How many start times fell in the window, counted up to
    /// `MISSED_WARNING_THRESHOLD + 1`.
    pub count: usize,
}

impl Schedule {
    /// Parses `schedule` in `time_zone` (UTC when absent). The error is a sentence for the
    /// CronJob's Events, saying what to write instead.
    pub fn parse(schedule: &str, time_zone: Option<&str>) -> Result<Schedule, ScheduleError> {
        let pattern = kubernetes_pattern(schedule).map_err(ScheduleError::Schedule)?;
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(&pattern)
            .map_err(|e| {
                ScheduleError::Schedule(format!(
                    "unparseable schedule {schedule:?}: {e}; write five fields: minute hour day-of-month month day-of-week"
                ))
            })?;
        let zone = match time_zone {
            None => TimeZone::UTC,
            Some(name) => TimeZone::get(name).map_err(|e| {
                ScheduleError::TimeZone(format!(
                    "unknown time zone {name:?}: {e}; use an IANA name such as \"Europe/Paris\" or leave timeZone out for UTC"
                ))
            })?,
        };
        Ok(Schedule {
            cron,
            zone: Zone(zone),
        })
    }

    /// The start times in `(after, now]`: the latest one, and how many there were.
    pub fn missed(&self, after: Timestamp, now: Timestamp) -> Missed {
        let now = whole_second(now);
        let most_recent = self
            .chrono(now)
            .and_then(|n| self.cron.find_previous_occurrence(&n, true).ok())
            .map(|t| from_chrono(&t))
            .filter(|t| *t > after);
        let mut count = 0;
        if most_recent.is_some() {
            let mut cursor = after;
            while count <= MISSED_WARNING_THRESHOLD {
                match self.next_after(cursor) {
                    Some(t) if t <= now => {
                        count += 1;
                        cursor = t;
                    }
                    _ => break,
                }
            }
        }
        Missed { most_recent, count }
    }

    /// The first start time strictly after `t`, if the schedule has one (`0 0 30 2 *`
    /// never fires).
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        let start = self.chrono(whole_second(t))?;
        self.cron
            .find_next_occurrence(&start, false)
            .ok()
            .map(|t| from_chrono(&t))
    }

    /// `t` as RFC 3339 with the zone's offset, as Kubernetes writes the scheduled-time
    /// annotation (`...Z` in UTC).
    pub fn format(&self, t: Timestamp) -> String {
        let zoned = t.to_zoned(self.zone.0.clone());
        if zoned.offset().seconds() == 0 {
            zoned.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
        } else {
            zoned.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
        }
    }

    fn chrono(&self, t: Timestamp) -> Option<DateTime<Zone>> {
        use chrono::TimeZone as _;
        self.zone.timestamp_opt(t.as_second(), 0).single()
    }
}

/// Why a schedule cannot be used; Kubernetes records each as its own Event reason.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ScheduleError {
    Schedule(String),
    TimeZone(String),
}

impl ScheduleError {
    pub fn reason(&self) -> &'static str {
        match self {
            ScheduleError::Schedule(_) => "InvalidSchedule",
            ScheduleError::TimeZone(_) => "UnknownTimeZone",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            ScheduleError::Schedule(m) | ScheduleError::TimeZone(m) => m,
        }
    }
}

/// The five-field pattern for `schedule`, or why Kubernetes would refuse it.
fn kubernetes_pattern(schedule: &str) -> Result<String, String> {
    let s = schedule.trim();
    if s.contains("TZ=") {
        return Err(format!(
            "schedule {schedule:?} sets a time zone (TZ= or CRON_TZ=); set spec.timeZone instead"
        ));
    }
    if let Some(descriptor) = s.strip_prefix('@') {
        let d = descriptor.to_ascii_lowercase();
        return match d.as_str() {
            "yearly" | "annually" => Ok("0 0 1 1 *".into()),
            "monthly" => Ok("0 0 1 * *".into()),
            "weekly" => Ok("0 0 * * 0".into()),
            "daily" | "midnight" => Ok("0 0 * * *".into()),
            "hourly" => Ok("0 * * * *".into()),
            _ if d.starts_with("every") => Err(format!(
                "schedule {schedule:?}: @every is not supported; write the interval as cron fields, e.g. \"*/5 * * * *\""
            )),
            _ => Err(format!(
                "schedule {schedule:?}: unknown descriptor; use @yearly, @monthly, @weekly, @daily or @hourly"
            )),
        };
    }
    let fields: Vec<&str> = s.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "schedule {schedule:?} has {} fields; write five: minute hour day-of-month month day-of-week",
            fields.len()
        ));
    }
    const MONTHS: [&str; 12] = [
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ];
    const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
    const NAMES: [&str; 5] = ["minute", "hour", "day-of-month", "month", "day-of-week"];
    for (i, field) in fields.iter().enumerate() {
        let mut rest = field.to_ascii_uppercase();
        let names: &[&str] = match i {
            3 => &MONTHS,
            4 => &DAYS,
            _ => &[],
        };
        for n in names {
            rest = rest.replace(n, "0");
        }
        if let Some(c) = rest
            .chars()
            .find(|c| !c.is_ascii_digit() && !"*,-/?".contains(*c))
        {
            return Err(format!(
                "schedule {schedule:?}: the {} field {field:?} has {c:?}, which Kubernetes cron does not allow (digits, names, * , - / ? only)",
                NAMES[i]
            ));
        }
    }
    Ok(fields.join(" "))
}

fn whole_second(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

fn from_chrono(t: &DateTime<Zone>) -> Timestamp {
    Timestamp::from_second(t.timestamp()).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// A jiff time zone as chrono sees one, so that croner can walk wall-clock time in it.
#[derive(Debug, Clone)]
pub(super) struct Zone(TimeZone);

/// An offset that remembers its zone: chrono rebuilds a zone from an offset
/// (`TimeZone::from_offset`), so a bare fixed offset would lose the DST rules.
#[derive(Debug, Clone)]
pub(super) struct ZoneOffset {
    zone: TimeZone,
    fixed: FixedOffset,
}

impl Zone {
    fn offset(&self, offset: jiff::tz::Offset) -> ZoneOffset {
        ZoneOffset {
            zone: self.0.clone(),
            fixed: FixedOffset::east_opt(offset.seconds())
                .unwrap_or_else(|| FixedOffset::east_opt(0).expect("zero is a valid offset")),
        }
    }
}

impl chrono::Offset for ZoneOffset {
    fn fix(&self) -> FixedOffset {
        self.fixed
    }
}

impl chrono::TimeZone for Zone {
    type Offset = ZoneOffset;

    fn from_offset(offset: &ZoneOffset) -> Self {
        Zone(offset.zone.clone())
    }

    fn offset_from_local_date(&self, local: &NaiveDate) -> MappedLocalTime<ZoneOffset> {
        self.offset_from_local_datetime(&local.and_time(NaiveTime::MIN))
    }

    fn offset_from_local_datetime(&self, local: &NaiveDateTime) -> MappedLocalTime<ZoneOffset> {
        let Some(civil) = civil(local) else {
            return MappedLocalTime::None;
        };
        match self.0.to_ambiguous_timestamp(civil).offset() {
            AmbiguousOffset::Unambiguous { offset } => MappedLocalTime::Single(self.offset(offset)),
            AmbiguousOffset::Gap { .. } => MappedLocalTime::None,
            // The offset before the fold is the larger one, so it names the earlier instant.
            AmbiguousOffset::Fold { before, after } => {
                MappedLocalTime::Ambiguous(self.offset(before), self.offset(after))
            }
        }
    }

    fn offset_from_utc_date(&self, utc: &NaiveDate) -> ZoneOffset {
        self.offset_from_utc_datetime(&utc.and_time(NaiveTime::MIN))
    }

    fn offset_from_utc_datetime(&self, utc: &NaiveDateTime) -> ZoneOffset {
        let at = Timestamp::from_second(utc.and_utc().timestamp()).unwrap_or(Timestamp::UNIX_EPOCH);
        self.offset(self.0.to_offset(at))
    }
}

fn civil(t: &NaiveDateTime) -> Option<jiff::civil::DateTime> {
    use chrono::{Datelike, Timelike};
    jiff::civil::DateTime::new(
        i16::try_from(t.year()).ok()?,
        i8::try_from(t.month()).ok()?,
        i8::try_from(t.day()).ok()?,
        i8::try_from(t.hour()).ok()?,
        i8::try_from(t.minute()).ok()?,
        i8::try_from(t.second()).ok()?,
        0,
    )
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn kubernetes_syntax_only() {
        for ok in [
            "* * * * *",
            "*/5 * * * *",
            "0 9 * * MON-FRI",
            "0 0 1 jan,jul *",
            "15 3 ? * *",
            "@hourly",
            "@Daily",
            "@midnight",
        ] {
            assert!(Schedule::parse(ok, None).is_ok(), "{ok}");
        }
        for (bad, says) in [
            ("* * * *", "has 4 fields"),
            ("0 * * * * *", "has 6 fields"),
            ("0 0 L * *", "does not allow"),
            ("0 0 * * 5#3", "does not allow"),
            ("@every 5m", "@every is not supported"),
            ("@fortnightly", "unknown descriptor"),
            ("CRON_TZ=UTC 0 * * * *", "set spec.timeZone"),
            ("61 * * * *", "unparseable"),
        ] {
            let err = Schedule::parse(bad, None).unwrap_err();
            assert!(err.message().contains(says), "{bad}: {}", err.message());
            assert_eq!(err.reason(), "InvalidSchedule");
        }
        let err = Schedule::parse("* * * * *", Some("Mars/Olympus")).unwrap_err();
        assert_eq!(err.reason(), "UnknownTimeZone");
    }

    #[test]
    fn every_minute_window() {
        let s = Schedule::parse("* * * * *", None).unwrap();
        // Nothing between the creation and the next minute.
        assert_eq!(
            s.missed(at("2026-03-01T10:00:05Z"), at("2026-03-01T10:00:59.9Z")),
            Missed {
                most_recent: None,
                count: 0
            }
        );
        // The boundary itself belongs to the window (after, now].
        assert_eq!(
            s.missed(at("2026-03-01T10:00:05Z"), at("2026-03-01T10:01:00Z")),
            Missed {
                most_recent: Some(at("2026-03-01T10:01:00Z")),
                count: 1
            }
        );
        // The last run itself is not missed again.
        assert_eq!(
            s.missed(at("2026-03-01T10:01:00Z"), at("2026-03-01T10:01:30Z"))
                .most_recent,
            None
        );
        let m = s.missed(at("2026-03-01T10:00:00Z"), at("2026-03-01T10:03:10Z"));
        assert_eq!(
            (m.most_recent, m.count),
            (Some(at("2026-03-01T10:03:00Z")), 3)
        );
        assert_eq!(
            s.next_after(at("2026-03-01T10:03:00Z")),
            Some(at("2026-03-01T10:04:00Z"))
        );
    }

    #[test]
    fn counting_stops_past_the_warning_threshold() {
        let s = Schedule::parse("* * * * *", None).unwrap();
        let m = s.missed(at("2026-01-01T00:00:00Z"), at("2026-03-01T00:00:00Z"));
        assert_eq!(m.count, MISSED_WARNING_THRESHOLD + 1);
        assert_eq!(m.most_recent, Some(at("2026-03-01T00:00:00Z")));
    }

    #[test]
    fn impossible_dates_never_fire() {
        let s = Schedule::parse("0 0 30 2 *", None).unwrap();
        assert_eq!(s.next_after(at("2026-01-01T00:00:00Z")), None);
        assert_eq!(
            s.missed(at("2026-01-01T00:00:00Z"), at("2026-06-01T00:00:00Z"))
                .most_recent,
            None
        );
    }

    #[test]
    fn time_zones_follow_daylight_saving() {
        let s = Schedule::parse("0 9 * * MON-FRI", Some("Europe/Paris")).unwrap();
        // Friday 2026-01-09 in winter (UTC+1), then Monday 2026-07-06 in summer (UTC+2).
        assert_eq!(
            s.next_after(at("2026-01-09T00:00:00Z")),
            Some(at("2026-01-09T08:00:00Z"))
        );
        assert_eq!(
            s.next_after(at("2026-01-09T08:00:00Z")),
            Some(at("2026-01-12T08:00:00Z"))
        );
        assert_eq!(
            s.next_after(at("2026-07-04T00:00:00Z")),
            Some(at("2026-07-06T07:00:00Z"))
        );
        assert_eq!(
            s.format(at("2026-01-05T08:00:00Z")),
            "2026-01-05T09:00:00+01:00"
        );
        let utc = Schedule::parse("@hourly", None).unwrap();
        assert_eq!(
            utc.format(at("2026-01-05T08:00:00Z")),
            "2026-01-05T08:00:00Z"
        );
    }

    #[test]
    fn a_skipped_wall_clock_time_runs_once() {
        // Paris skipped 02:00-03:00 on 2026-03-29: the 02:30 run happens once, just after
        // the gap, and the next one is the following night.
        let s = Schedule::parse("30 2 * * *", Some("Europe/Paris")).unwrap();
        let first = s.next_after(at("2026-03-28T12:00:00Z")).unwrap();
        assert_eq!(first, at("2026-03-29T01:00:00Z"));
        assert_eq!(s.next_after(first), Some(at("2026-03-30T00:30:00Z")));
    }
}
