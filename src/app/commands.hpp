#pragma once
#include <string>
#include <vector>

#include "io/sink.hpp"

namespace smtplb::app {

int run_daemon(const std::string& config_path);
int check_config(const std::string& config_path);
int run_sink(const io::SinkOptions& options);
int run_demo(int messages);

}  // namespace smtplb::app
