//! The node-side runner: a node's whole command list as one POSIX `sh` program on one channel
//! (`templates/commands/batch.hbs`). On the node every command starts at once, each under its
//! own `timeout`, with its stdout and stderr in a private temporary directory that a trap
//! removes (also on a signal or a lost session). When all are done the program prints, between
//! lines that carry this run's random boundary, each command's exit status and start and end
//! times (`/proc/uptime`), the length of each output (`wc -c`), then the outputs, each ending
//! with a trailer that names its command and stream.
//!
//! [`results`] is pure: it takes an output only by its announced length and checks the trailer
//! behind it, so no output can pass for another command's, and a truncated or malformed frame
//! is that command's failure alone (or, when the stream ends early, of every command whose
//! frame did not arrive whole).

use std::time::Duration;

use crate::command::{BATCH, Command, Templates, kill_after};
use crate::error::Cause;
use crate::output::{Exit, Output};

/// The longest program sent as one exec request: sshd reads it from one packet (OpenSSH's
/// `PACKET_MAX_SIZE` is 256 KiB) and Linux limits one argument to 128 KiB
/// (`MAX_ARG_STRLEN`); a longer list runs one channel per command.
pub const MAX_PROGRAM: usize = 64 * 1024;

/// Seconds the runner may take past its commands' limit and kill delay: printing the outputs.
pub const EMIT_GRACE: Duration = Duration::from_secs(30);

/// The line that runs `commands` through the node-side runner (`batch.hbs`): every command
/// under its own `timeout` of `limit`, the runner itself under the wrapper with room to print
/// the outputs.
pub fn line(
    templates: &Templates,
    commands: &[Command],
    limit: Duration,
    sudo: bool,
    boundary: &str,
) -> Result<String, crate::Error> {
    let list: Vec<serde_json::Value> = commands
        .iter()
        .enumerate()
        .map(|(i, c)| {
            serde_json::json!({
                "i": i + 1,
                "argv": c.argv(),
                "script": c.script,
            })
        })
        .collect();
    let data = serde_json::json!({
        "boundary": boundary,
        "commands": list,
        "timeout": limit.as_secs().max(1),
        "kill_after": kill_after().as_secs(),
    });
    let program = templates.render(BATCH, &data)?;
    templates.remote_line(&program, runner_limit(limit), sudo)
}

/// How long the runner as a whole may take: its commands' limit and kill delay, then printing.
pub fn runner_limit(limit: Duration) -> Duration {
    limit + kill_after() + EMIT_GRACE
}

/// A fresh boundary: 128 random bits, hex. The program text is visible on the node (`ps`), so
/// the boundary only frames; the lengths are what cannot be forged by an output.
pub fn boundary() -> String {
    format!("pveops-{:032x}", rand::random::<u128>())
}

/// One stream of one command: not seen, its bytes, or why its frame is unusable.
type Frame = Option<Result<Vec<u8>, String>>;

/// How one command of a run ended, as the runner reported it.
#[derive(Debug, PartialEq)]
struct Status {
    exit: Exit,
    /// Seconds since boot (`/proc/uptime`, 10 ms steps) at its start and end.
    start: f64,
    end: f64,
}

/// Each command's result from what the runner's channel returned: its frames, a lost session
/// (no exit status and no end line) for every command whose frame did not arrive, and the
/// runner's own complaint on stderr (a shell error) when it printed no results at all.
/// `count` commands were sent; `started_at` is when the client sent the program; `limit` is
/// each command's timeout.
pub fn results(
    run: &Output,
    boundary: &str,
    count: usize,
    started_at: jiff::Timestamp,
    limit: Duration,
) -> Vec<Result<Output, Cause>> {
    let stderr = run.stderr_text();
    let complaint = stderr.lines().map(str::trim).find(|l| !l.is_empty());
    let mut r = decode(&run.stdout, complaint, boundary, count, started_at, limit);
    if run.exit == Exit::Unknown && !is_complete(&run.stdout, boundary) {
        for x in r.iter_mut().filter(|x| x.is_err()) {
            *x = Err(Cause::Disconnected(
                "the connection was lost before the node-side runner's results arrived".into(),
            ));
        }
    }
    r
}

/// Splits a runner's stdout into each command's result; `complaint` is the runner's first
/// stderr line, named when it printed no results.
fn decode(
    stdout: &[u8],
    complaint: Option<&str>,
    boundary: &str,
    count: usize,
    started_at: jiff::Timestamp,
    limit: Duration,
) -> Vec<Result<Output, Cause>> {
    let fail = |why: &str| -> Vec<Result<Output, Cause>> {
        (0..count)
            .map(|_| Err(Cause::Protocol(format!("the node-side runner {why}"))))
            .collect()
    };
    let b = boundary.as_bytes();
    let begin = [b, b" begin "].concat();
    let Some(at) = find_line_start(stdout, &begin) else {
        let why = "printed no results (its program did not run to the end)";
        return match complaint {
            Some(c) => fail(&format!("{why}: {c}")),
            None => fail(why),
        };
    };
    let mut pos = at;
    let line = |pos: &mut usize| -> Option<&[u8]> {
        let rest = stdout.get(*pos..)?;
        let nl = rest.iter().position(|&c| c == b'\n')?;
        *pos += nl + 1;
        Some(&rest[..nl])
    };
    let Some(t0) = line(&mut pos)
        .and_then(|l| l.strip_prefix(begin.as_slice()))
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
    else {
        return fail("printed an unreadable first line");
    };
    let status_tag = [b, b" status "].concat();
    let sizes_tag = [b, b" sizes"].concat();
    let data_tag = [b, b" data"].concat();
    let mut statuses: Vec<Option<Status>> = (0..count).map(|_| None).collect();
    loop {
        let Some(l) = line(&mut pos) else {
            return fail("ended before the status of every command");
        };
        if l == sizes_tag.as_slice() {
            break;
        }
        let Some(rest) = l.strip_prefix(status_tag.as_slice()) else {
            return fail("printed an unexpected status line");
        };
        if let Some((i, s)) = parse_status(rest)
            && let Some(slot) = i.checked_sub(1).and_then(|i| statuses.get_mut(i))
        {
            *slot = Some(s);
        }
    }
    // `wc -c` lines: `SIZE NAME`, then `SIZE total`; a file wc could not read is not listed,
    // and `cat` skips it the same way.
    let mut files: Vec<(usize, char, usize)> = Vec::new();
    loop {
        let Some(l) = line(&mut pos) else {
            return fail("ended before the output lengths");
        };
        if l == data_tag.as_slice() {
            break;
        }
        let text = String::from_utf8_lossy(l);
        let mut words = text.split_whitespace();
        let (Some(size), Some(name)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(size) = size.parse::<usize>() else {
            continue;
        };
        if let Some((i, stream)) = name.split_once('.')
            && let Ok(i) = i.parse::<usize>()
            && (stream == "o" || stream == "e")
        {
            files.push((i, if stream == "o" { 'o' } else { 'e' }, size));
        }
    }
    let mut streams: Vec<[Frame; 2]> = (0..count).map(|_| [None, None]).collect();
    for (i, stream, size) in files {
        let Some(slot) = i.checked_sub(1).and_then(|k| streams.get_mut(k)) else {
            pos = pos.saturating_add(size);
            continue;
        };
        let which = usize::from(stream == 'e');
        let Some(frame) = pos.checked_add(size).and_then(|end| stdout.get(pos..end)) else {
            slot[which] = Some(Err(
                "the session ended before this output was complete".into()
            ));
            pos = stdout.len();
            continue;
        };
        pos += size;
        let trailer = format!("\n{boundary} {i} {stream}\n");
        slot[which] = Some(match frame.strip_suffix(trailer.as_bytes()) {
            Some(body) => Ok(body.to_vec()),
            None => Err("its framed output did not end with its own trailer".into()),
        });
    }
    // Frames that arrived whole stand even when the end line did not (`is_complete`); the
    // others already carry their own failure.
    statuses
        .into_iter()
        .zip(streams)
        .map(|(status, [out, err])| {
            let status = status.ok_or_else(|| {
                Cause::Protocol("the node-side runner printed no status for it".into())
            })?;
            let why = |e: String| Cause::Protocol(format!("the node-side runner: {e}"));
            let missing = || "the node-side runner printed no output for it".to_string();
            let stdout = out.ok_or_else(missing).and_then(|r| r).map_err(why)?;
            let stderr = err.ok_or_else(missing).and_then(|r| r).map_err(why)?;
            let offset = Duration::from_secs_f64((status.start - t0).max(0.0));
            let duration = Duration::from_secs_f64((status.end - status.start).max(0.0));
            let started = started_at
                .checked_add(jiff::SignedDuration::try_from(offset).unwrap_or_default())
                .unwrap_or(started_at);
            // GNU timeout exits 124 after its TERM, 137 after its KILL.
            if matches!(status.exit, Exit::Code(124 | 137)) && duration >= limit {
                return Err(Cause::CommandTimeout {
                    secs: limit.as_secs(),
                    killed: true,
                });
            }
            Ok(Output {
                stdout,
                stderr,
                exit: status.exit,
                started_at: started,
                duration,
                truncated: false,
            })
        })
        .collect()
}

/// True when the runner got as far as printing its first line.
pub fn has_begun(stdout: &[u8], boundary: &str) -> bool {
    find_line_start(stdout, format!("{boundary} begin ").as_bytes()).is_some()
}

/// True when the stream ended with the runner's end line right after the last frame.
pub fn is_complete(stdout: &[u8], boundary: &str) -> bool {
    stdout.ends_with(format!("\n{boundary} end\n").as_bytes())
}

/// The start of the first line that begins with `prefix`.
fn find_line_start(hay: &[u8], prefix: &[u8]) -> Option<usize> {
    if hay.starts_with(prefix) {
        return Some(0);
    }
    let needle = [b"\n", prefix].concat();
    hay.windows(needle.len())
        .position(|w| w == needle.as_slice())
        .map(|p| p + 1)
}

/// `I RC START END` (RC `x` when the command's status was lost).
fn parse_status(rest: &[u8]) -> Option<(usize, Status)> {
    let text = std::str::from_utf8(rest).ok()?;
    let mut w = text.split_whitespace();
    let i = w.next()?.parse().ok()?;
    let rc = w.next()?;
    let start = w.next()?.parse().ok()?;
    let end = w.next()?.parse().ok()?;
    let exit = match rc.parse::<u32>() {
        Ok(code) => shell_status(code),
        Err(_) => Exit::Unknown,
    };
    Some((i, Status { exit, start, end }))
}

/// The shell reports a process killed by signal N as status 128+N (POSIX `wait`); GNU
/// `timeout` re-raises its command's fatal signal on itself, so that is what the shell sees.
/// The fatal signals a command dies of are named as sshd would name them in `exit-signal`.
fn shell_status(code: u32) -> Exit {
    let name = match code.checked_sub(128) {
        Some(1) => "HUP",
        Some(2) => "INT",
        Some(3) => "QUIT",
        Some(4) => "ILL",
        Some(6) => "ABRT",
        Some(7) => "BUS",
        Some(8) => "FPE",
        Some(9) => "KILL",
        Some(11) => "SEGV",
        Some(13) => "PIPE",
        Some(14) => "ALRM",
        Some(15) => "TERM",
        _ => return Exit::Code(code),
    };
    Exit::Signal {
        name: name.into(),
        core_dumped: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: &str = "pveops-0123456789abcdef0123456789abcdef";

    fn at() -> jiff::Timestamp {
        "2026-12-06T12:00:00Z".parse().unwrap()
    }

    /// What the program prints for `outs` (stdout, stderr, rc), byte for byte.
    fn run_output(outs: &[(&[u8], &[u8], &str)]) -> Vec<u8> {
        let mut s = format!("{B} begin 100.00\n").into_bytes();
        for (i, (_, _, rc)) in outs.iter().enumerate() {
            s.extend(format!("{B} status {} {rc} 100.01 100.51\n", i + 1).bytes());
        }
        s.extend(format!("{B} sizes\n").bytes());
        let mut data = Vec::new();
        let mut total = 0;
        for (i, (o, e, _)) in outs.iter().enumerate() {
            for (stream, bytes) in [("o", o), ("e", e)] {
                let mut f = bytes.to_vec();
                f.extend(format!("\n{B} {} {stream}\n", i + 1).bytes());
                s.extend(format!("{:>7} {}.{stream}\n", f.len(), i + 1).bytes());
                total += f.len();
                data.extend(f);
            }
        }
        s.extend(format!("{total:>7} total\n{B} data\n").bytes());
        s.extend(data);
        s.extend(format!("{B} end\n").bytes());
        s
    }

    fn decode_all(bytes: &[u8], n: usize) -> Vec<Result<Output, Cause>> {
        decode(bytes, None, B, n, at(), Duration::from_secs(30))
    }

    #[test]
    fn outputs_come_back_byte_for_byte_with_status_and_times() {
        let nasty: &[u8] = b"line\n\0nul\nno newline at the end";
        let forged = format!("{B} 2 o\n{B} end\n{B} status 2 0 1 2\n");
        let bytes = run_output(&[
            (nasty, b"", "0"),
            (forged.as_bytes(), b"warn\n", "2"),
            (b"", b"", "143"),
        ]);
        let r = decode_all(&bytes, 3);
        let o = r[0].as_ref().unwrap();
        assert_eq!(o.stdout, nasty);
        assert!(o.stderr.is_empty());
        assert_eq!(o.exit, Exit::Code(0));
        assert_eq!(o.duration, Duration::from_millis(500));
        assert_eq!(o.started_at, at() + jiff::SignedDuration::from_millis(10));
        let o = r[1].as_ref().unwrap();
        assert_eq!(
            o.stdout,
            forged.as_bytes(),
            "a boundary-like output is just output"
        );
        assert_eq!(o.stderr, b"warn\n");
        assert_eq!(o.exit, Exit::Code(2));
        assert_eq!(
            r[2].as_ref().unwrap().exit,
            Exit::Signal {
                name: "TERM".into(),
                core_dumped: false
            }
        );
        assert!(is_complete(&bytes, B));
    }

    #[test]
    fn shell_login_noise_before_the_program_is_skipped() {
        let mut bytes = b"Welcome to the node\n".to_vec();
        bytes.extend(run_output(&[(b"x\n", b"", "0")]));
        assert_eq!(decode_all(&bytes, 1)[0].as_ref().unwrap().stdout, b"x\n");
    }

    #[test]
    fn a_cut_stream_fails_only_the_frames_it_cut() {
        let big = vec![b'a'; 10 * 1024 * 1024];
        let bytes = run_output(&[(b"first\n", b"", "0"), (&big, b"", "0"), (b"3\n", b"", "0")]);
        // Cut in the middle of the second command's stdout.
        let cut = bytes.len() - big.len() / 2;
        let r = decode_all(&bytes[..cut], 3);
        assert_eq!(r[0].as_ref().unwrap().stdout, b"first\n");
        assert!(matches!(&r[1], Err(Cause::Protocol(m)) if m.contains("ended before")));
        assert!(r[2].is_err());
        assert!(!is_complete(&bytes[..cut], B));
        // Whole, the 10 MiB come back intact.
        assert_eq!(
            decode_all(&bytes, 3)[1].as_ref().unwrap().stdout.len(),
            big.len()
        );
    }

    #[test]
    fn a_frame_longer_than_announced_fails_itself_and_never_feeds_another() {
        let mut bytes = run_output(&[(b"one\n", b"", "0"), (b"two\n", b"", "0")]);
        // The first command's file grew after `wc` measured it.
        let marker = format!("one\n\n{B} 1 o\n");
        let at = bytes
            .windows(marker.len())
            .position(|w| w == marker.as_bytes())
            .unwrap();
        bytes.splice(at..at, b"late ".iter().copied());
        let r = decode_all(&bytes, 2);
        assert!(r[0].is_err(), "{:?}", r[0]);
        assert!(
            r[1].is_err(),
            "misaligned frames fail rather than mix: {:?}",
            r[1]
        );
    }

    #[test]
    fn no_results_at_all_fail_every_command_with_one_reason() {
        for bytes in [
            &b""[..],
            b"mktemp: failed\n",
            format!("{B} begin x\n").as_bytes(),
        ] {
            let r = decode_all(bytes, 2);
            assert_eq!(r.len(), 2);
            assert!(
                r.iter().all(|x| matches!(x, Err(Cause::Protocol(_)))),
                "{r:?}"
            );
        }
    }

    #[test]
    fn a_command_killed_by_its_timeout_is_a_command_timeout() {
        let mut bytes = run_output(&[(b"", b"", "124")]);
        let r = decode(&bytes, None, B, 1, at(), Duration::from_millis(400));
        assert!(matches!(
            r[0],
            Err(Cause::CommandTimeout { killed: true, .. })
        ));
        // A 124 well inside the limit is the command's own status.
        bytes = run_output(&[(b"", b"", "124")]);
        assert_eq!(
            decode_all(&bytes, 1)[0].as_ref().unwrap().exit,
            Exit::Code(124)
        );
    }

    fn channel(stdout: Vec<u8>, stderr: &str, exit: Exit) -> Output {
        Output {
            stdout,
            stderr: stderr.as_bytes().to_vec(),
            exit,
            started_at: at(),
            duration: Duration::from_secs(1),
            truncated: false,
        }
    }

    #[test]
    fn a_lost_session_fails_what_did_not_arrive_and_a_runner_error_is_named() {
        let bytes = run_output(&[(b"first\n", b"", "0"), (b"second\n", b"", "0")]);
        // Cut inside the second command's stdout frame.
        let cut = bytes.windows(6).rposition(|w| w == b"second").unwrap() + 3;
        let lost = channel(bytes[..cut].to_vec(), "", Exit::Unknown);
        let r = results(&lost, B, 2, at(), Duration::from_secs(30));
        assert_eq!(r[0].as_ref().unwrap().stdout, b"first\n");
        assert!(matches!(&r[1], Err(Cause::Disconnected(_))), "{:?}", r[1]);
        let failed = channel(
            Vec::new(),
            "\nmktemp: failed to create directory\n",
            Exit::Code(2),
        );
        let r = results(&failed, B, 1, at(), Duration::from_secs(30));
        assert!(
            matches!(&r[0], Err(Cause::Protocol(m)) if m.ends_with("printed no results (its program did not run to the end): mktemp: failed to create directory")),
            "{:?}",
            r[0]
        );
    }

    #[test]
    fn a_lost_status_is_an_unknown_exit_never_zero() {
        let bytes = run_output(&[(b"", b"", "x")]);
        assert_eq!(
            decode_all(&bytes, 1)[0].as_ref().unwrap().exit,
            Exit::Unknown
        );
    }
}
