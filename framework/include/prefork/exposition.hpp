// The scoreboard as text for other programs: the OpenMetrics exposition
// (and Prometheus' older text format, for tools that only read that one)
// and a JSON document. Used by prefork-top and by the master's --metrics
// HTTP endpoint; both render the same snapshot, so they always agree.
// Metric names, labels and the JSON schema: docs/metrics.md.
#pragma once

#include <prefork/scoreboard.hpp>

#include <string>
#include <string_view>

namespace prefork {

enum class MetricsFormat {
  openmetrics,      // application/openmetrics-text; version=1.0.0 (ends with "# EOF")
  prometheus_text,  // text/plain; version=0.0.4 (what promtool 2.42 checks)
};

// The HTTP Content-Type of each format.
std::string_view metrics_content_type(MetricsFormat format) noexcept;

// Every figure of `snapshot`: per-slot series labelled slot="N", the counts
// of dead workers under slot="retired" (so that a sum over slots never goes
// backwards), listener="tcp 127.0.0.1:8080" on per-listener series.
std::string render_metrics(const ScoreboardSnapshot& snapshot,
                           MetricsFormat format = MetricsFormat::openmetrics);

// One JSON document, without a trailing newline; `name` is the scoreboard's.
std::string render_json(const ScoreboardSnapshot& snapshot, std::string_view name);

}  // namespace prefork
