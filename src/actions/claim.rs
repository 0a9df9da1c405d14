//! The volumes (and the stack) one action works on: each `Action` names
//! its plan's claim, and the engine's `rules::guard::VolumeLocks` keeps two
//! claims that conflict from running at once.

/// The volumes (and the stack) one action works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeClaim {
    keys: Vec<String>,
    /// Restarting o2cb: every OCFS2 volume is affected.
    whole_stack: bool,
    /// Works on an OCFS2 volume or the o2cb stack.
    uses_stack: bool,
}

impl VolumeClaim {
    /// The plan's claim, as its action states it.
    pub fn of(plan: &super::Plan) -> Self {
        plan.action().claim(plan)
    }

    /// Claims `keys` (`mount:/srv/a`, `source:UUID=…`, `session:…`).
    pub fn keys(keys: Vec<String>) -> Self {
        Self {
            keys,
            whole_stack: false,
            uses_stack: false,
        }
    }

    /// Also works on an OCFS2 volume or the o2cb stack.
    pub fn on_stack(mut self) -> Self {
        self.uses_stack = true;
        self
    }

    /// Takes the whole o2cb stack (and so every OCFS2 volume) down.
    pub fn whole_stack(mut self) -> Self {
        self.whole_stack = true;
        self.uses_stack = true;
        self
    }

    /// The key of a mount point.
    pub fn mount(mountpoint: &str) -> String {
        format!("mount:{mountpoint}")
    }

    pub fn conflicts(&self, other: &Self) -> bool {
        self.keys.iter().any(|k| other.keys.contains(k))
            || (self.whole_stack && other.uses_stack)
            || (other.whole_stack && self.uses_stack)
    }
}
