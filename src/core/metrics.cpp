#include "core/metrics.hpp"

#include <cmath>
#include <cstdio>

namespace smtplb::core {

void ListenerCounters::count_result(std::string_view result, std::uint64_t bytes) {
    if (result == "relayed") {
        ++relayed;
        message_bytes += bytes;
    } else if (result == "rejected") {
        ++rejected;
    } else if (result == "tempfailed") {
        ++tempfailed;
    } else if (result == "aborted") {
        ++aborted;
    } else if (result == "spooled") {
        ++spooled;
        message_bytes += bytes;
    }
}

void Histogram::observe(double seconds) {
    for (std::size_t i = 0; i < kBounds.size(); ++i) {
        if (seconds <= kBounds[i]) {
            ++buckets_[i];
            break;
        }
    }
    ++count_;  // above the last bound: only in +Inf
    sum_ += seconds;
}

namespace {
std::string number(double v) {
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    char buffer[32];
    if (v == std::floor(v) && std::fabs(v) < 1e15)
        std::snprintf(buffer, sizeof buffer, "%.0f", v);
    else
        std::snprintf(buffer, sizeof buffer, "%.6g", v);
    return buffer;
}
}  // namespace

void PrometheusText::family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
}

void PrometheusText::write_labels(const Labels& labels, std::string_view extra_key,
                                  std::string_view extra_value) {
    if (labels.empty() && extra_key.empty()) return;
    out_ += '{';
    bool first = true;
    auto one = [&](std::string_view key, std::string_view value) {
        if (!first) out_ += ',';
        first = false;
        out_ += key;
        out_ += "=\"";
        for (char c : value) {
            if (c == '\\' || c == '"') {
                out_ += '\\';
                out_ += c;
            } else if (c == '\n') {
                out_ += "\\n";
            } else {
                out_ += c;
            }
        }
        out_ += '"';
    };
    for (const auto& [k, v] : labels)
        one(k, v);
    if (!extra_key.empty()) one(extra_key, extra_value);
    out_ += '}';
}

void PrometheusText::sample(std::string_view name, const Labels& labels, double value) {
    out_ += name;
    write_labels(labels);
    out_ += ' ';
    out_ += number(value);
    out_ += '\n';
}

void PrometheusText::histogram(std::string_view name, const Labels& labels, const Histogram& h) {
    std::uint64_t cumulative = 0;
    std::string bucket = std::string(name) + "_bucket";
    for (std::size_t i = 0; i < Histogram::kBounds.size(); ++i) {
        cumulative += h.buckets()[i];
        out_ += bucket;
        write_labels(labels, "le", number(Histogram::kBounds[i]));
        out_ += ' ' + number(static_cast<double>(cumulative)) + '\n';
    }
    out_ += bucket;
    write_labels(labels, "le", "+Inf");
    out_ += ' ' + number(static_cast<double>(h.count())) + '\n';
    sample(std::string(name) + "_sum", labels, h.sum());
    sample(std::string(name) + "_count", labels, static_cast<double>(h.count()));
}

}  // namespace smtplb::core
