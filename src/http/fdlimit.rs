//! The descriptor budget: how many connections the listeners may hold so
//! that the collectors, the helper pipes, the kernel log, the heartbeat
//! devices and the audit log always find a free descriptor.
//!
//! At start the daemon raises `RLIMIT_NOFILE`'s soft limit to the hard limit
//! (systemd's `LimitNOFILE=` sets both; the default soft limit of 1024 is a
//! select(2)-era relic this process does not need). Of that, `FD_RESERVE`
//! stays for everything but connections; the admin and peer listeners have
//! small fixed caps; the scrape listener gets `[web.limits] max_connections`,
//! lowered (with a warning) to what is left when the limit is too small. A
//! limit that leaves fewer than `MIN_SCRAPE_CONNECTIONS` stops the daemon at
//! start with a message naming the limit to raise.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Descriptors never given to connections: the collectors' files (a few
/// per collector and per heartbeat region), probe threads' files, the
/// helper's pipes (three per action), the kernel log, journald, the audit
/// and state files, the runtime's epoll and signal descriptors. Far more
/// than a busy node uses (about 60 measured on a two-region node).
pub const FD_RESERVE: u64 = 512;
/// Connections to the admin socket or TCP admin listener at once: local
/// operators and scripts.
pub const ADMIN_MAX_CONNECTIONS: usize = 32;
/// Connections to the peer listener at once: a few per cluster node.
pub const PEER_MAX_CONNECTIONS: usize = 256;
/// Fewer scrape connections than this is no exporter.
pub const MIN_SCRAPE_CONNECTIONS: usize = 16;

/// Why the connection budget does not fit the descriptor limit.
#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    #[error("the open-file limit is {limit}: too small for {FD_RESERVE} reserved descriptors, {others} admin and peer connections and at least {MIN_SCRAPE_CONNECTIONS} scrape connections; raise it (systemd LimitNOFILE=65536, ulimit -n)")]
    TooSmall { limit: u64, others: usize },
}

/// The connection caps in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// The soft `RLIMIT_NOFILE` after raising it.
    pub limit: u64,
    pub scrape: usize,
    pub admin: usize,
    pub peer: usize,
}

/// Raises the soft limit to the hard one; returns the soft limit in force
/// (unchanged when raising fails, which is logged).
pub fn raise_nofile() -> u64 {
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(error) => {
                tracing::warn!(soft, hard, error = %error, "Cannot raise the open-file limit.");
                soft
            }
        },
        Ok((soft, _)) => soft,
        Err(error) => {
            tracing::warn!(error = %error, "Cannot read the open-file limit; assuming 1024.");
            1024
        }
    }
}

/// The caps for a soft limit of `limit` descriptors and the configured
/// scrape cap `wanted`.
pub fn budget(limit: u64, wanted: usize) -> Result<Budget, BudgetError> {
    let others = ADMIN_MAX_CONNECTIONS + PEER_MAX_CONNECTIONS;
    let room = limit
        .saturating_sub(FD_RESERVE)
        .saturating_sub(others as u64);
    let room = usize::try_from(room).unwrap_or(usize::MAX);
    if room < MIN_SCRAPE_CONNECTIONS {
        return Err(BudgetError::TooSmall { limit, others });
    }
    Ok(Budget {
        limit,
        scrape: wanted.min(room),
        admin: ADMIN_MAX_CONNECTIONS,
        peer: PEER_MAX_CONNECTIONS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_stays_free() {
        let fits = budget(65536, 4096).unwrap();
        assert_eq!((fits.scrape, fits.admin, fits.peer), (4096, 32, 256));
        // 1024: the scrape cap shrinks so the reserve and the others fit.
        let small = budget(1024, 4096).unwrap();
        assert_eq!(small.scrape, 1024 - 512 - 32 - 256);
        let total = small.scrape + small.admin + small.peer;
        assert!(total as u64 + FD_RESERVE <= 1024);
        let error = budget(800, 4096).unwrap_err();
        assert!(error.to_string().contains("LimitNOFILE"), "{error}");
    }
}
