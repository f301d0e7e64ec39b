#pragma once
#include <string>
#include <vector>

namespace smtplb::config {

struct Diagnostic {
    enum class Severity { Error, Warning };
    Severity severity = Severity::Error;
    std::string path;  // key path, e.g. "pool[0].backend[1].weight"
    int line = 0;      // 0 when unknown
    std::string message;
};

struct Diagnostics {
    std::vector<Diagnostic> items;
    void error(std::string path, int line, std::string message) {
        items.push_back({Diagnostic::Severity::Error, std::move(path), line, std::move(message)});
    }
    void warning(std::string path, int line, std::string message) {
        items.push_back({Diagnostic::Severity::Warning, std::move(path), line, std::move(message)});
    }
    bool has_errors() const {
        for (const auto& d : items)
            if (d.severity == Diagnostic::Severity::Error) return true;
        return false;
    }
    // "file:line: error: path: message" lines.
    std::string format(const std::string& source) const;
};

}  // namespace smtplb::config
