//! Waves: consecutive migrations that run at once (`--max-migrations`, or datacenter.cfg's
//! `max_workers`), cut from the plan's steps; the executor judges each wave's memory live.

use super::{Action, Step, Verify, Wave};

/// Whether a step is a migration that may run beside others: a detached `qm`/`pct migrate`
/// verified by where the guest is afterwards.
fn concurrent(s: &Step) -> bool {
    s.detached
        && s.command.is_some()
        && s.only_if.is_none()
        && matches!(s.detail, Action::Migrate { .. })
        && matches!(s.verify, Some(Verify::GuestOn { .. }))
}

/// Runs of consecutive migration steps cut into waves of at most `max` (none when `max` is 1:
/// one at a time, as PVE's bulk migration with one worker). A run of one is no wave.
pub fn waves(steps: &[Step], max: u32) -> Vec<Wave> {
    let mut out = Vec::new();
    if max <= 1 {
        return out;
    }
    let mut run: Vec<u32> = Vec::new();
    let flush = |run: &mut Vec<u32>, out: &mut Vec<Wave>| {
        if run.len() > 1 {
            for chunk in run.chunks(max as usize) {
                out.push(Wave {
                    wave: out.len() as u32 + 1,
                    steps: chunk.to_vec(),
                });
            }
        }
        run.clear();
    };
    for s in steps {
        if concurrent(s) {
            run.push(s.seq);
        } else {
            flush(&mut run, &mut out);
        }
    }
    flush(&mut run, &mut out);
    out
}
