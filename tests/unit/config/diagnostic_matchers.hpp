#pragma once
// What the [[limit]], [[route]] and destination-limit loader tests ask of a
// load: a diagnostic of some severity at a key path, with a line.
#include <gtest/gtest.h>

#include <string>

#include "config/loader.hpp"

namespace smtplb::config::test_support {

// `r` has a diagnostic of `severity` at `path` whose message holds `text`
// and which names its line.
inline ::testing::AssertionResult says(const LoadResult& r, Diagnostic::Severity severity,
                                       const std::string& path, const std::string& text) {
    for (const auto& d : r.diagnostics.items)
        if (d.severity == severity && d.path == path && d.message.find(text) != std::string::npos &&
            d.line > 0)
            return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "no '" << path << ": " << text << "' in\n"
                                         << r.diagnostics.format("test.toml");
}

// `r` did not load, with that error among its diagnostics.
inline ::testing::AssertionResult refused_with(const LoadResult& r, const std::string& path,
                                               const std::string& text) {
    if (r.config) return ::testing::AssertionFailure() << "loaded without error";
    return says(r, Diagnostic::Severity::Error, path, text);
}

}  // namespace smtplb::config::test_support
