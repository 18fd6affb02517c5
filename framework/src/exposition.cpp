// PLACEHOLDER: being written (helper A owns this file).
#include <prefork/exposition.hpp>

namespace prefork {

std::string_view metrics_content_type(MetricsFormat format) noexcept {
  return format == MetricsFormat::openmetrics
             ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
             : "text/plain; version=0.0.4; charset=utf-8";
}

std::string render_metrics(const ScoreboardSnapshot&, MetricsFormat format) {
  return format == MetricsFormat::openmetrics ? "# EOF\n" : "";
}

std::string render_json(const ScoreboardSnapshot&, std::string_view) { return "{}"; }

}  // namespace prefork
