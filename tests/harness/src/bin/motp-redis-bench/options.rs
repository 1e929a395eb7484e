//! The command line.

use crate::{MAX_RUNS, MAX_SECONDS};

pub(crate) struct Options {
    pub(crate) secs: u64,
    pub(crate) runs: usize,
    pub(crate) in_flight: Vec<usize>,
    pub(crate) modes: Vec<Mode>,
    pub(crate) netns: bool,
    pub(crate) delay_ms: Option<f64>,
    /// `--proxy-delay-ms`: the round-trip time the [`DelayProxy`](crate::proxy::DelayProxy)s add.
    pub(crate) proxy_delay_ms: Option<f64>,
}

#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Mode {
    Single,
    Sentinel,
}

impl Mode {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mode::Single => "single",
            Mode::Sentinel => "sentinel",
        }
    }
}

pub(crate) const USAGE: &str = "usage: motp-redis-bench [SECONDS] [--seconds S] [--runs N] \
                     [--in-flight 1,4,16] [--mode single,sentinel] [--netns] [--delay-ms D] \
                     [--proxy-delay-ms D]";

pub(crate) fn parse_options() -> Result<Options, String> {
    let mut o = Options {
        secs: 3,
        runs: 1,
        in_flight: vec![1, 4, 16],
        modes: vec![Mode::Single, Mode::Sentinel],
        netns: false,
        delay_ms: None,
        proxy_delay_ms: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |what: &str| args.next().ok_or(format!("{what} needs a value"));
        match arg.as_str() {
            "--seconds" => o.secs = parse_num(&value("--seconds")?)?,
            "--runs" => o.runs = parse_num(&value("--runs")?)?,
            "--in-flight" => {
                o.in_flight = value("--in-flight")?
                    .split(',')
                    .map(parse_num)
                    .collect::<Result<_, _>>()?
            }
            "--mode" => {
                o.modes = value("--mode")?
                    .split(',')
                    .map(|m| match m {
                        "single" => Ok(Mode::Single),
                        "sentinel" => Ok(Mode::Sentinel),
                        _ => Err(format!("unknown mode {m:?} (single, sentinel)")),
                    })
                    .collect::<Result<_, _>>()?
            }
            "--netns" => o.netns = true,
            "--delay-ms" => {
                let d: f64 = value("--delay-ms")?
                    .parse()
                    .map_err(|e| format!("--delay-ms: {e}"))?;
                if !(d > 0.0 && d <= 1000.0) {
                    return Err("--delay-ms must be in (0, 1000]".into());
                }
                o.delay_ms = Some(d);
                o.netns = true;
            }
            "--proxy-delay-ms" => {
                let d: f64 = value("--proxy-delay-ms")?
                    .parse()
                    .map_err(|e| format!("--proxy-delay-ms: {e}"))?;
                if !(d > 0.0 && d <= 1000.0) {
                    return Err("--proxy-delay-ms must be in (0, 1000]".into());
                }
                o.proxy_delay_ms = Some(d);
            }
            "-h" | "--help" => return Err(String::new()),
            s if !s.starts_with('-') => o.secs = parse_num(s)?,
            s => return Err(format!("unknown option {s:?}")),
        }
    }
    if o.secs == 0 || o.secs > MAX_SECONDS {
        return Err(format!("seconds per run must be 1..={MAX_SECONDS}"));
    }
    if o.runs == 0 || o.runs > MAX_RUNS {
        return Err(format!("runs must be 1..={MAX_RUNS}"));
    }
    if o.in_flight.is_empty() || o.in_flight.iter().any(|&c| c == 0 || c > 200) {
        return Err("in-flight counts must be 1..=200 (the queue is 256 deep)".into());
    }
    if o.modes.is_empty() {
        return Err("no mode".into());
    }
    if o.netns && o.proxy_delay_ms.is_some() {
        return Err("--proxy-delay-ms runs on loopback: not with --netns or --delay-ms".into());
    }
    Ok(o)
}

fn parse_num<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("not a number: {s:?}"))
}
