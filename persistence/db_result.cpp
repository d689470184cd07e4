// Names of the persistence error codes, as they appear in logs.
#include "persistence/db_result.hpp"

namespace datahub::persistence {

std::string_view to_string(db_errc code) {
  switch (code) {
    case db_errc::unavailable:
      return "unavailable";
    case db_errc::overloaded:
      return "overloaded";
    case db_errc::timeout:
      return "timeout";
    case db_errc::conflict:
      return "conflict";
    case db_errc::failed:
      return "failed";
  }
  return "failed";
}

}  // namespace datahub::persistence
