//! Spreading a commitment's HTLC signatures (signing or verifying) over the machine's cores
//! (also used at start to decode the node's channel rows and rebuild its channels from them).
//!
//! Without anchors, every commitment carries one signature per untrimmed HTLC: with a
//! hundred HTLCs in flight that is a hundred ECDSA signatures to make and a hundred to check
//! per commitment round, each independent of the others. Owns: [`map_in_order`], which cuts
//! such a list into chunks run on scoped threads (and [`map_in_chunks`], the same for
//! dearer items such as a turn's onions) — pure computation, no I/O, no shared
//! state, results in input order and the first error in input order, so the outcome is the
//! same as one loop (ECDSA nonces are deterministic, RFC 6979). Must never: spawn threads for
//! short lists (a thread costs tens of microseconds; a signature about thirty), or hold a
//! thread beyond the call.

use std::sync::OnceLock;

/// Fewest items a thread is started for.
pub const MIN_ITEMS_PER_THREAD: usize = 8;

/// The cores this process may use (read once: the standard library reads cgroup files).
fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// `items.iter().map(f).collect()`, on up to one thread per core once there are at least
/// [`MIN_ITEMS_PER_THREAD`] items per thread; the calling thread takes the first chunk.
pub fn map_in_order<T, R, E, F>(items: &[T], f: F) -> Result<Vec<R>, E>
where
    T: Sync,
    R: Send,
    E: Send,
    F: Fn(&T) -> Result<R, E> + Sync,
{
    map_in_chunks(items, MIN_ITEMS_PER_THREAD, f)
}

/// As [`map_in_order`], with a thread started for every `min_per_thread` items (for work
/// dearer per item than a signature: an onion costs about two of them per hop).
pub fn map_in_chunks<T, R, E, F>(items: &[T], min_per_thread: usize, f: F) -> Result<Vec<R>, E>
where
    T: Sync,
    R: Send,
    E: Send,
    F: Fn(&T) -> Result<R, E> + Sync,
{
    let threads = cores().min(items.len() / min_per_thread.max(1)).max(1);
    if threads == 1 {
        return items.iter().map(&f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    let parts: Vec<Result<Vec<R>, E>> = std::thread::scope(|s| {
        let mut chunks = items.chunks(chunk);
        let first = chunks.next().unwrap_or_default();
        let handles: Vec<_> = chunks
            .map(|c| s.spawn(move || c.iter().map(f).collect::<Result<Vec<R>, E>>()))
            .collect();
        let mut parts = vec![first.iter().map(f).collect()];
        for h in handles {
            match h.join() {
                Ok(part) => parts.push(part),
                // A panic in `f` is a bug of ours, not of the input: pass it on unchanged.
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        parts
    });
    let mut out = Vec::with_capacity(items.len());
    for part in parts {
        out.extend(part?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_and_errors_come_in_input_order() {
        for n in [0usize, 1, 7, 8, 15, 16, 17, 100, 483] {
            let items: Vec<usize> = (0..n).collect();
            let doubled: Result<Vec<usize>, usize> = map_in_order(&items, |i| Ok(i * 2));
            assert_eq!(
                doubled.unwrap(),
                items.iter().map(|i| i * 2).collect::<Vec<_>>()
            );
            // Every item from the middle on fails: the error is the first failing one's.
            let failing: Result<Vec<usize>, usize> =
                map_in_order(&items, |&i| if i >= n / 2 { Err(i) } else { Ok(i) });
            if n == 0 {
                assert_eq!(failing, Ok(vec![]));
            } else {
                assert_eq!(failing, Err(n / 2));
            }
            for min in [0, 1, 2, 3] {
                let tripled: Result<Vec<usize>, usize> = map_in_chunks(&items, min, |i| Ok(i * 3));
                assert_eq!(
                    tripled.unwrap(),
                    items.iter().map(|i| i * 3).collect::<Vec<_>>()
                );
            }
        }
    }
}
