//! Ages as Kubernetes writes them (`k8s.io/apimachinery/pkg/util/duration.HumanDuration`).

use k8s_openapi::jiff::SignedDuration;

/// About two significant figures of `d`, the way every AGE column reads: `45s`, `3m2s`,
/// `17m`, `5h30m`, `20h`, `2d3h`, `45d`, `2y3d`, `9y`.
///
/// A duration down to 1s below zero prints as `0s`, because a client's or a node's clock
/// a little ahead of the server's should not show as an error; further below is
/// `<invalid>`. Every unit is truncated, never rounded (`119s` stays `119s`, then `2m`).
pub fn human_duration(d: SignedDuration) -> String {
    // Go's int(d.Seconds()) truncates towards zero, as integer division does here.
    let seconds = d.as_secs();
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{days}d")
        } else {
            format!("{days}d{h}h")
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        let dy = days % 365;
        return if dy == 0 {
            format!("{years}y")
        } else {
            format!("{years}y{dy}d")
        };
    }
    format!("{years}y")
}
