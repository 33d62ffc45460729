// Status mapping across legs (sip/status.cc): the peer's reason text never crosses, and
// statuses that name the other side's topology or credentials are replaced.
#include "sip/status.h"

#include <gtest/gtest.h>

#include <string>

namespace veil::sip {
namespace {

TEST(Status, StandardPhrases) {
  EXPECT_EQ(std::string(standard_phrase(180)), "Ringing");
  EXPECT_EQ(std::string(standard_phrase(183)), "Session Progress");
  EXPECT_EQ(std::string(standard_phrase(200)), "OK");
  EXPECT_EQ(std::string(standard_phrase(486)), "Busy Here");
  EXPECT_EQ(std::string(standard_phrase(487)), "Request Terminated");
  EXPECT_EQ(std::string(standard_phrase(488)), "Not Acceptable Here");
  EXPECT_EQ(std::string(standard_phrase(503)), "Service Unavailable");
  EXPECT_EQ(std::string(standard_phrase(603)), "Decline");
  // Unregistered codes take their class's phrase.
  EXPECT_EQ(std::string(standard_phrase(499)), "Bad Request");
  EXPECT_EQ(std::string(standard_phrase(599)), "Server Internal Error");
  EXPECT_EQ(std::string(standard_phrase(699)), "Busy Everywhere");
}

TEST(Status, FailureMapping) {
  EXPECT_EQ(map_failure_status(486, false), 486);
  EXPECT_EQ(map_failure_status(404, false), 404);
  EXPECT_EQ(map_failure_status(603, false), 603);
  EXPECT_EQ(map_failure_status(503, false), 503);
  EXPECT_EQ(map_failure_status(302, false), 480);
  EXPECT_EQ(map_failure_status(401, false), 403);
  EXPECT_EQ(map_failure_status(407, false), 403);
  EXPECT_EQ(map_failure_status(408, true), 503);
  EXPECT_EQ(map_failure_status(503, true), 503);
}

}  // namespace
}  // namespace veil::sip
