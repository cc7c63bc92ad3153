// The market-data commands:
//   etcpipe md decode INPUT… --templates T.xml [--framing F] [-o OUT]
//   etcpipe md listen IFACE --templates T.xml [--udp P…] [--tcp-server A:P…]
//   etcpipe md send  --templates T.xml (--udp A:P | --tcp A:P) [-c N] [--rate R]
//   etcpipe md recv  --templates T.xml (--udp [A:]P | --tcp A:P) [--busy-poll]
//   etcpipe md bench [--quick]
#pragma once

#include "cli/command.hpp"

namespace etcpipe::cli {

[[nodiscard]] Entry md_commands();

}  // namespace etcpipe::cli
