//! Durations and clock differences as people read them, for every command's output.

/// "5 h 30 min", "40 s": a clock difference for people.
pub fn human_duration(secs: i64) -> String {
    let s = secs.unsigned_abs();
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    let mut parts = Vec::new();
    if h > 0 {
        parts.push(format!("{h} h"));
    }
    if m > 0 {
        parts.push(format!("{m} min"));
    }
    if sec > 0 || parts.is_empty() {
        parts.push(format!("{sec} s"));
    }
    parts.join(" ")
}

/// "10 s ahead of the server", "5 h 30 min behind the server", "in step with the server".
pub fn relative(secs: i64) -> String {
    match secs.signum() {
        0 => "in step with the server".to_owned(),
        1 => format!("{} ahead of the server", human_duration(secs)),
        _ => format!("{} behind the server", human_duration(secs)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(-19800), "5 h 30 min");
        assert_eq!(human_duration(10), "10 s");
        assert_eq!(human_duration(0), "0 s");
        assert_eq!(human_duration(3610), "1 h 10 s");
        assert_eq!(relative(-10), "10 s behind the server");
        assert_eq!(relative(20), "20 s ahead of the server");
    }
}
