#pragma once
#include <boost/json.hpp>
#include <functional>
#include <optional>
#include <string>

#include "admin/client.hpp"
#include "commands.hpp"

namespace smtplb::app {

// One request to the daemon's admin API; when there is no answer, says why
// (as `command`) on stderr and sets the exit status.
std::optional<admin::HttpResult> call(const AdminOptions& options, const char* command,
                                      const char* method, const std::string& path, int& status);
// A string field of a JSON answer, or the whole body when it has none.
std::string field_or_body(const std::string& body, const char* key);
// What `command` shows of a JSON answer: an error status on stderr (1),
// the body as it is with --json, else `print` of it (1 when the body is
// not the JSON `print` expects).
int show_answer(const admin::HttpResult& result, const AdminOptions& options, const char* command,
                const std::function<void(const boost::json::value&)>& print);
// A JSON value as table text ("-" when absent).
std::string text_of(const boost::json::value* v);

}  // namespace smtplb::app
