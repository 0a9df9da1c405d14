//! Metric families declared as data: one table per collector.
//!
//! `family_table!` turns a list of `Variant = gauge("name", "help")` rows into
//! an enum and its table of declarations; `Families<Table>` holds one empty
//! `Family` per row, in table order, and the collector pushes samples by
//! variant (`families[IscsiFamily::LoggedIn].push(…)`). A family is thus named,
//! typed and described once, and a collector's code only says which samples
//! it has. Rows are what docs/metrics.md lists; `tests/docs.rs` holds the two
//! in step through the goldens.

use std::marker::PhantomData;
use std::ops::{Index, IndexMut};

use super::{Family, Kind};

/// One family as declared: what its `# TYPE` and `# HELP` lines say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Declaration {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

/// An enum whose variants index `DECLARATIONS`; made by `family_table!`.
pub trait FamilyTable: Copy {
    const DECLARATIONS: &'static [Declaration];
    fn index(self) -> usize;
}

/// One `Family` per row of table `T`, in table order, indexed by `T`.
#[derive(Debug)]
pub struct Families<T> {
    families: Vec<Family>,
    table: PhantomData<T>,
}

impl<T: FamilyTable> Families<T> {
    /// Every family of the table, still without samples.
    pub fn new() -> Self {
        Self {
            families: T::DECLARATIONS
                .iter()
                .map(|d| Family {
                    name: d.name,
                    help: d.help,
                    kind: d.kind,
                    samples: Vec::new(),
                    histograms: Vec::new(),
                })
                .collect(),
            table: PhantomData,
        }
    }

    /// The families, in table order (empty ones are dropped when rendering).
    pub fn into_vec(self) -> Vec<Family> {
        self.families
    }
}

impl<T: FamilyTable> Default for Families<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: FamilyTable> Index<T> for Families<T> {
    type Output = Family;

    fn index(&self, family: T) -> &Family {
        &self.families[family.index()]
    }
}

impl<T: FamilyTable> IndexMut<T> for Families<T> {
    fn index_mut(&mut self, family: T) -> &mut Family {
        &mut self.families[family.index()]
    }
}

/// Declares a table of families: an enum with one variant per family and its
/// `FamilyTable` implementation.
///
/// ```ignore
/// family_table! {
///     /// The `net` collector's families.
///     enum NetFamily {
///         Connected = gauge("ocfs2_net_connected", "1 when connected."),
///         Sent = counter("ocfs2_net_sent", "Messages sent."),
///     }
/// }
/// ```
macro_rules! family_table {
    (
        $(#[$meta:meta])*
        $vis:vis enum $table:ident {
            $($variant:ident = $kind:ident($name:literal, $help:literal $(,)?)),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        $vis enum $table {
            $($variant),*
        }

        impl $crate::metrics::FamilyTable for $table {
            const DECLARATIONS: &'static [$crate::metrics::Declaration] = &[
                $($crate::metrics::Declaration {
                    name: $name,
                    kind: $crate::metrics::family_kind!($kind),
                    help: $help,
                }),*
            ];

            fn index(self) -> usize {
                self as usize
            }
        }
    };
}
pub(crate) use family_table;

/// `gauge` or `counter` in a `family_table!` row, as a `Kind`.
macro_rules! family_kind {
    (gauge) => {
        $crate::metrics::Kind::Gauge
    };
    (counter) => {
        $crate::metrics::Kind::Counter
    };
}
pub(crate) use family_kind;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{encode, normalize};

    family_table! {
        enum Example {
            Up = gauge("example_up", "1 when up."),
            Events = counter("example_events", "Events seen."),
            Unused = gauge("example_unused", "Never filled."),
        }
    }

    #[test]
    fn rows_become_families_in_table_order() {
        let mut families = Families::<Example>::new();
        families[Example::Events].push(&[], 3.0);
        families[Example::Up].push(&[("node", "n1")], 1.0);
        assert!(families[Example::Unused].samples.is_empty());
        let families = families.into_vec();
        let names: Vec<_> = families.iter().map(|f| (f.name, f.kind)).collect();
        assert_eq!(
            names,
            [
                ("example_up", Kind::Gauge),
                ("example_events", Kind::Counter),
                ("example_unused", Kind::Gauge),
            ]
        );
        assert_eq!(
            encode(normalize(families)),
            "# HELP example_events Events seen.\n# TYPE example_events counter\n\
             example_events_total 3.0\n\
             # HELP example_up 1 when up.\n# TYPE example_up gauge\n\
             example_up{node=\"n1\"} 1.0\n# EOF\n"
        );
    }
}
