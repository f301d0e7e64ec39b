#pragma once
#include <map>
#include <string>

#include <toml++/toml.h>

namespace smtplb::config {

// The line of every key in a parsed file, by the key paths diagnostics use
// ("server.state_dir", "listener[1].bind", "pool[0].backend[2].address"),
// so that checks made after loading (directories, ports, certificates)
// can still point at the line to change.
class KeyLines {
  public:
    KeyLines() = default;
    explicit KeyLines(const toml::table& root);
    // The key's line; else its nearest enclosing table's; 0 when unknown.
    int line(const std::string& path) const;

  private:
    void add(const toml::node& node, const std::string& path);
    std::map<std::string, int> lines_;
};

}  // namespace smtplb::config
