//! The metric model collectors fill and the OpenMetrics renderer `/metrics` uses.
//!
//! Collectors build `Family` values while they sample (off the scrape path);
//! the snapshot stores them; a scrape only sorts nothing and encodes: families
//! are kept sorted by name and samples by labels when a section is built, so
//! the output is deterministic. Encoding goes through `prometheus-client`'s
//! text encoder (one `Collector` over the snapshot), which owns the OpenMetrics
//! details: `# TYPE`/`# HELP`, `_total` on counters, label escaping, `# EOF`.

use std::borrow::Cow;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

mod table;
pub(crate) use table::{family_kind, family_table};
pub use table::{Declaration, Families, FamilyTable};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    /// Rendered with the `_total` suffix; the family name has none.
    Counter,
    /// `_bucket{le}`, `_sum` and `_count` series from `Family::histograms`.
    Histogram,
}

pub type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    pub value: f64,
}

/// One labelled series of a histogram: the observations that fell into
/// each bucket (by upper bound, not cumulative; whatever `count` has beyond
/// them is the `+Inf` bucket's), their sum and count.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSample {
    pub labels: Labels,
    pub buckets: Vec<(f64, u64)>,
    pub sum: f64,
    pub count: u64,
}

/// One metric family: name (without `_total`), help text, type, samples
/// (histograms: `histograms` instead).
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub samples: Vec<Sample>,
    pub histograms: Vec<HistogramSample>,
}

impl Family {
    pub fn gauge(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            help,
            kind: Kind::Gauge,
            samples: Vec::new(),
            histograms: Vec::new(),
        }
    }

    pub fn histogram(name: &'static str, help: &'static str) -> Self {
        Self {
            kind: Kind::Histogram,
            ..Self::gauge(name, help)
        }
    }

    /// Adds one histogram series; `buckets` are per bucket, not cumulative.
    pub fn push_histogram(
        &mut self,
        labels: &[(&'static str, &str)],
        buckets: Vec<(f64, u64)>,
        sum: f64,
        count: u64,
    ) {
        self.histograms.push(HistogramSample {
            labels: labels.iter().map(|(k, v)| (*k, (*v).to_string())).collect(),
            buckets,
            sum,
            count,
        });
    }

    pub fn counter(name: &'static str, help: &'static str) -> Self {
        Self {
            kind: Kind::Counter,
            ..Self::gauge(name, help)
        }
    }

    /// Adds one sample; label values are copied.
    pub fn with(mut self, labels: &[(&'static str, &str)], value: f64) -> Self {
        self.push(labels, value);
        self
    }

    pub fn push(&mut self, labels: &[(&'static str, &str)], value: f64) {
        self.samples.push(Sample {
            labels: labels.iter().map(|(k, v)| (*k, (*v).to_string())).collect(),
            value,
        });
    }

    /// Sorts samples by their label values so output never depends on the
    /// order a collector happened to read its sources in.
    pub fn sorted(mut self) -> Self {
        self.samples.sort_by(|a, b| a.labels.cmp(&b.labels));
        self.histograms.sort_by(|a, b| a.labels.cmp(&b.labels));
        self
    }
}

/// Sorts families by name and their samples by labels; drops empty families
/// so an absent source leaves no dangling `# TYPE` lines.
pub fn normalize(families: Vec<Family>) -> Vec<Family> {
    let mut families: Vec<Family> = families
        .into_iter()
        .filter(|f| !f.samples.is_empty() || !f.histograms.is_empty())
        .map(Family::sorted)
        .collect();
    families.sort_by(|a, b| a.name.cmp(b.name));
    families
}

pub fn bool_value(flag: bool) -> f64 {
    if flag {
        1.0
    } else {
        0.0
    }
}

#[derive(Debug)]
struct FamiliesCollector(Vec<Family>);

impl prometheus_client::collector::Collector for FamiliesCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for family in &self.0 {
            let metric_type = match family.kind {
                Kind::Gauge => MetricType::Gauge,
                Kind::Counter => MetricType::Counter,
                Kind::Histogram => MetricType::Histogram,
            };
            let mut metric =
                encoder.encode_descriptor(family.name, family.help, None, metric_type)?;
            for histogram in &family.histograms {
                let labels: Vec<(Cow<'static, str>, Cow<'_, str>)> = histogram
                    .labels
                    .iter()
                    .map(|(k, v)| (Cow::Borrowed(*k), Cow::Borrowed(v.as_str())))
                    .collect();
                let mut buckets = histogram.buckets.clone();
                let finite: u64 = buckets.iter().map(|(_, n)| n).sum();
                buckets.push((f64::INFINITY, histogram.count.saturating_sub(finite)));
                metric
                    .encode_family(&labels)?
                    .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                        histogram.sum,
                        histogram.count,
                        &buckets,
                        None,
                    )?;
            }
            if family.kind == Kind::Histogram {
                continue;
            }
            if let [only] = family.samples.as_slice() {
                if only.labels.is_empty() {
                    // No `{}` after the name for a family with a single unlabelled sample.
                    encode_value(family.kind, only.value, metric)?;
                    continue;
                }
            }
            for sample in &family.samples {
                let labels: Vec<(Cow<'static, str>, Cow<'_, str>)> = sample
                    .labels
                    .iter()
                    .map(|(k, v)| (Cow::Borrowed(*k), Cow::Borrowed(v.as_str())))
                    .collect();
                encode_value(family.kind, sample.value, metric.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

fn encode_value(kind: Kind, value: f64, encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
    match kind {
        Kind::Gauge => ConstGauge::new(value).encode(encoder),
        Kind::Counter => ConstCounter::new(value).encode(encoder),
        // Histograms are encoded from `Family::histograms`, never from a value.
        Kind::Histogram => Ok(()),
    }
}

/// Encodes families (already normalized) as OpenMetrics text ending in `# EOF`.
pub fn encode(families: Vec<Family>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(FamiliesCollector(families)));
    let mut out = String::new();
    // Writing into a String cannot fail; an encoder error would be a bug in a
    // family name, which tests catch.
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        tracing::error!(error = %e, "Encoding metrics failed.");
    }
    out
}

/// Rewrites OpenMetrics text as Prometheus text format 0.0.4, for clients
/// that do not ask for OpenMetrics (curl, promtool): counters carry their
/// `_total` name on `# HELP`/`# TYPE` too, and there is no `# EOF`.
pub fn openmetrics_to_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + counters.len() * 16);
    for line in openmetrics.lines() {
        if line == "# EOF" {
            continue;
        }
        let rewritten = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(rewritten.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_sorted_openmetrics() {
        let families = normalize(vec![
            Family::gauge("b_gauge", "B.")
                .with(&[("mountpoint", "/z")], 2.0)
                .with(&[("mountpoint", "/a b\"")], 1.0),
            Family::counter("a_events", "A.").with(&[], 3.0),
            Family::gauge("c_empty", "Never rendered."),
        ]);
        let text = encode(families);
        assert_eq!(
            openmetrics_to_text(&text),
            "# HELP a_events_total A.\n# TYPE a_events_total counter\na_events_total 3.0\n\
             # HELP b_gauge B.\n# TYPE b_gauge gauge\n\
             b_gauge{mountpoint=\"/a b\\\"\"} 1.0\nb_gauge{mountpoint=\"/z\"} 2.0\n"
        );
        assert_eq!(
            text,
            "# HELP a_events A.\n# TYPE a_events counter\na_events_total 3.0\n\
             # HELP b_gauge B.\n# TYPE b_gauge gauge\n\
             b_gauge{mountpoint=\"/a b\\\"\"} 1.0\nb_gauge{mountpoint=\"/z\"} 2.0\n# EOF\n"
        );
    }

    #[test]
    fn renders_histograms_with_cumulative_buckets() {
        let mut heal = Family::histogram("x_heal_seconds", "H.");
        heal.push_histogram(&[("action", "remount")], vec![(1.0, 2), (5.0, 0)], 3.5, 3);
        let text = encode(normalize(vec![heal]));
        assert_eq!(
            text,
            "# HELP x_heal_seconds H.\n# TYPE x_heal_seconds histogram\n\
             x_heal_seconds_sum{action=\"remount\"} 3.5\n\
             x_heal_seconds_count{action=\"remount\"} 3\n\
             x_heal_seconds_bucket{le=\"1.0\",action=\"remount\"} 2\n\
             x_heal_seconds_bucket{le=\"5.0\",action=\"remount\"} 2\n\
             x_heal_seconds_bucket{le=\"+Inf\",action=\"remount\"} 3\n# EOF\n"
        );
    }
}
