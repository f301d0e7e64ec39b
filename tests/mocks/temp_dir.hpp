#pragma once
#include <stdlib.h>

#include <filesystem>
#include <string>

namespace smtplb::test_support {

// A fresh directory under /tmp, removed with everything in it at scope end.
struct TempDir {
    explicit TempDir(std::string prefix = "smtplb-test") {
        std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
        path = ::mkdtemp(tmpl.data());
    }
    ~TempDir() { std::filesystem::remove_all(path); }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    std::string file(const char* name) const { return path + "/" + name; }
    std::string path;
};

}  // namespace smtplb::test_support
