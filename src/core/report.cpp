#include "core/report.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <set>

namespace smtplb::core {

namespace {

std::string utc(std::int64_t ms) {
    std::time_t t = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buffer[32];
    std::strftime(buffer, sizeof buffer, "%Y-%m-%d %H:%M", &tm);
    return buffer;
}

std::string xml_escape(const std::string& s) {
    std::string out;
    for (char c : s) {
        switch (c) {
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '&':
                out += "&amp;";
                break;
            case '"':
                out += "&quot;";
                break;
            default:
                out += c;
        }
    }
    return out;
}

}  // namespace

TrafficReport build_report(const std::vector<ReportInput>& lines, ReportBy by,
                           std::chrono::milliseconds interval) {
    TrafficReport report;
    report.by = by;
    report.interval = interval;
    std::set<std::string> keys;
    std::vector<std::pair<std::int64_t, std::string>> hits;
    const auto step = std::max<std::int64_t>(1, interval.count());
    for (const auto& line : lines) {
        if (line.result != "relayed") {
            ++report.skipped;
            continue;
        }
        std::int64_t start = line.time_ms - ((line.time_ms % step) + step) % step;
        auto add = [&](const std::string& key) {
            std::string k = key.empty() ? "-" : key;
            keys.insert(k);
            hits.emplace_back(start, k);
        };
        switch (by) {
            case ReportBy::Backend:
                add(line.backend);
                break;
            case ReportBy::Listener:
                add(line.listener);
                break;
            case ReportBy::Client:
                add(line.client);
                break;
            case ReportBy::Domain:
                for (const auto& d : line.domains)
                    add(d);
                break;
        }
        ++report.total;
    }
    report.keys.assign(keys.begin(), keys.end());
    report.totals.assign(report.keys.size(), 0);
    for (const auto& [start, key] : hits) {
        auto column = static_cast<std::size_t>(
            std::lower_bound(report.keys.begin(), report.keys.end(), key) - report.keys.begin());
        auto& row = report.rows[start];
        row.resize(report.keys.size(), 0);
        ++row[column];
        ++report.totals[column];
    }
    if (!report.totals.empty()) {
        auto [lo, hi] = std::minmax_element(report.totals.begin(), report.totals.end());
        report.skew = *lo == 0 ? 0.0 : static_cast<double>(*hi) / static_cast<double>(*lo);
    }
    return report;
}

std::string TrafficReport::table() const {
    std::string out;
    char cell[64];
    std::size_t width = 10;
    for (const auto& k : keys)
        width = std::max(width, k.size() + 2);
    auto pad = [&](const std::string& s, std::size_t w) {
        return std::string(w > s.size() ? w - s.size() : 0, ' ') + s;
    };
    // The first column holds "YYYY-MM-DD HH:MM" and two spaces on every row.
    const std::size_t first = utc(0).size() + 2;
    auto label = [&](const std::string& s) { return s + std::string(first - s.size(), ' '); };
    out += label("interval (UTC)");
    for (const auto& k : keys)
        out += pad(k, width);
    out += pad("total", 10) + "\n";
    for (const auto& [start, counts] : rows) {
        out += utc(start) + "  ";
        std::uint64_t sum = 0;
        for (std::size_t i = 0; i < keys.size(); ++i) {
            out += pad(std::to_string(counts[i]), width);
            sum += counts[i];
        }
        out += pad(std::to_string(sum), 10) + "\n";
    }
    // With --by domain a message counts once per domain, so the total column
    // adds up the cells; the messages are counted in the last line.
    std::uint64_t counted = 0;
    for (auto t : totals)
        counted += t;
    out += label("total");
    for (std::size_t i = 0; i < keys.size(); ++i)
        out += pad(std::to_string(totals[i]), width);
    out += pad(std::to_string(counted), 10) + "\n";
    out += label("share");
    for (std::size_t i = 0; i < keys.size(); ++i) {
        std::snprintf(cell, sizeof cell, "%.1f%%",
                      counted ? 100.0 * static_cast<double>(totals[i]) / counted : 0.0);
        out += pad(cell, width);
    }
    out += "\n";
    if (keys.size() >= 2) {
        if (skew == 0)
            std::snprintf(cell, sizeof cell, "skew (max/min share): infinite, a key has none");
        else
            std::snprintf(cell, sizeof cell, "skew (max/min share): %.2f", skew);
        out += cell;
        if (by == ReportBy::Backend && (skew == 0 || skew > kSkewLimit)) {
            std::snprintf(cell, sizeof cell, "  IMBALANCED (over %.2f)", kSkewLimit);
            out += cell;
        }
        out += "\n";
    }
    out += std::to_string(total) + " relayed messages; " + std::to_string(skipped) +
           " other lines skipped\n";
    return out;
}

std::string TrafficReport::svg() const {
    // One polyline per key: relayed messages per interval.
    static const char* kColours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                     "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
    const int width = 900, height = 420, left = 60, right = 180, top = 30, bottom = 60;
    const int plot_w = width - left - right, plot_h = height - top - bottom;
    std::uint64_t peak = 1;
    for (const auto& [start, counts] : rows)
        for (auto c : counts)
            peak = std::max(peak, c);
    std::vector<std::int64_t> starts;
    for (const auto& [start, counts] : rows)
        starts.push_back(start);
    auto x_of = [&](std::size_t i) {
        return left + (starts.size() > 1 ? static_cast<double>(i) * plot_w / (starts.size() - 1)
                                         : plot_w / 2.0);
    };
    auto y_of = [&](std::uint64_t v) {
        return top + plot_h - static_cast<double>(v) * plot_h / static_cast<double>(peak);
    };
    std::string out;
    char buffer[256];
    std::snprintf(buffer, sizeof buffer,
                  "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                  "font-family=\"sans-serif\" font-size=\"12\">\n",
                  width, height);
    out += buffer;
    out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
    std::snprintf(buffer, sizeof buffer,
                  "<text x=\"%d\" y=\"18\">Relayed messages per interval (skew %.2f)</text>\n",
                  left, skew);
    out += buffer;
    std::snprintf(buffer, sizeof buffer,
                  "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n"
                  "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n",
                  left, top, left, top + plot_h, left, top + plot_h, left + plot_w, top + plot_h);
    out += buffer;
    std::snprintf(buffer, sizeof buffer,
                  "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%llu</text>\n"
                  "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">0</text>\n",
                  left - 6, top + 4, static_cast<unsigned long long>(peak), left - 6,
                  top + plot_h + 4);
    out += buffer;
    if (!starts.empty()) {
        std::snprintf(buffer, sizeof buffer, "<text x=\"%d\" y=\"%d\">%s</text>\n", left,
                      top + plot_h + 20, utc(starts.front()).c_str());
        out += buffer;
        if (starts.size() > 1) {
            std::snprintf(buffer, sizeof buffer,
                          "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>\n", left + plot_w,
                          top + plot_h + 20, utc(starts.back()).c_str());
            out += buffer;
        }
    }
    // A line needs two intervals: one interval is drawn as a bar per key,
    // its value written above it, so a short log still shows the split.
    const bool bars = rows.size() == 1;
    const double bar_w = keys.empty() ? 0 : std::min(60.0, plot_w * 0.8 / keys.size());
    for (std::size_t k = 0; k < keys.size(); ++k) {
        const char* colour = kColours[k % std::size(kColours)];
        if (bars) {
            const auto value = rows.begin()->second[k];
            // Centred in its slot: the keys share 80% of the width.
            const double slot = plot_w * 0.8 / static_cast<double>(keys.size());
            const double x =
                left + plot_w * 0.1 + static_cast<double>(k) * slot + (slot - bar_w) / 2;
            std::snprintf(buffer, sizeof buffer,
                          "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                          "fill=\"%s\"/><text x=\"%.1f\" y=\"%.1f\" "
                          "text-anchor=\"middle\">%llu</text>\n",
                          x, y_of(value), bar_w, top + plot_h - y_of(value), colour, x + bar_w / 2,
                          y_of(value) - 4, static_cast<unsigned long long>(value));
            out += buffer;
        } else {
            out += "<polyline fill=\"none\" stroke-width=\"2\" stroke=\"";
            out += colour;
            out += "\" points=\"";
            std::size_t i = 0;
            for (const auto& [start, counts] : rows) {
                std::snprintf(buffer, sizeof buffer, "%s%.1f,%.1f", i ? " " : "", x_of(i),
                              y_of(counts[k]));
                out += buffer;
                ++i;
            }
            out += "\"/>\n";
        }
        std::snprintf(buffer, sizeof buffer,
                      "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%s\"/>"
                      "<text x=\"%d\" y=\"%d\">",
                      left + plot_w + 20, top + static_cast<int>(k) * 18, colour,
                      left + plot_w + 38, top + static_cast<int>(k) * 18 + 11);
        out += buffer;
        out += xml_escape(keys[k]) + " (" + std::to_string(totals[k]) + ")</text>\n";
    }
    out += "</svg>\n";
    return out;
}

}  // namespace smtplb::core
