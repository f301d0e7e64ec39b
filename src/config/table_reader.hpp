#pragma once
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <toml++/toml.h>

#include "config/diagnostics.hpp"

namespace smtplb::config {

// Reads one TOML table into typed fields with defaults and bounds, records
// every problem with its key path and line, and reports keys nobody read
// (a misspelt key in a mail configuration must not pass silently).
class TableReader {
  public:
    TableReader(const toml::table& table, std::string path, Diagnostics& diags);
    ~TableReader();
    TableReader(const TableReader&) = delete;
    TableReader& operator=(const TableReader&) = delete;

    const toml::node* node(const std::string& key);
    std::string key_path(const std::string& key) const { return path_ + "." + key; }
    int line_of(const std::string& key) const;

    void string(const std::string& key, std::string& out, bool required = false);
    void integer(const std::string& key, std::uint32_t& out, std::uint32_t min, std::uint32_t max);
    void size(const std::string& key, std::uint64_t& out, std::uint64_t min, std::uint64_t max);
    void duration(const std::string& key, std::chrono::milliseconds& out,
                  std::chrono::milliseconds min, std::chrono::milliseconds max);
    void boolean(const std::string& key, bool& out);
    void strings(const std::string& key, std::vector<std::string>& out);
    template <typename E>
    void choice(const std::string& key, E& out,
                std::initializer_list<std::pair<const char*, E>> options) {
        std::string text;
        string(key, text);
        if (text.empty()) return;
        std::string names;
        for (const auto& [name, value] : options) {
            if (text == name) {
                out = value;
                return;
            }
            names += names.empty() ? name : std::string(" | ") + name;
        }
        diags_.error(key_path(key), line_of(key),
                     "must be one of " + names + ", not \"" + text + "\"");
    }
    // Array of tables, e.g. [[pool.backend]]; each element read by the caller.
    std::vector<const toml::table*> tables(const std::string& key);
    // A sub-table, whether written as [a.b] or as an inline table.
    const toml::table* table(const std::string& key);

    Diagnostics& diagnostics() { return diags_; }
    const std::string& path() const { return path_; }

  private:
    void wrong_type(const std::string& key, const std::string& expected);

    const toml::table& table_;
    std::string path_;
    Diagnostics& diags_;
    std::set<std::string> read_;
};

}  // namespace smtplb::config
