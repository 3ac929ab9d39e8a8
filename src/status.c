/* SPDX-License-Identifier: Apache-2.0 */
/* Names and sentences of the status codes, generated from the one list in clpsa.h. */
#include <clpsa/clpsa.h>

const char *clpsa_status_name(clpsa_status status) {
    switch (status) {
#define CLPSA_X_NAME(name, value, sentence)                                                        \
    case name:                                                                                     \
        return #name;
        CLPSA_STATUS_LIST(CLPSA_X_NAME)
#undef CLPSA_X_NAME
    }
    return "CLPSA_UNKNOWN_STATUS";
}

const char *clpsa_status_string(clpsa_status status) {
    switch (status) {
#define CLPSA_X_SENTENCE(name, value, sentence)                                                    \
    case name:                                                                                     \
        return sentence;
        CLPSA_STATUS_LIST(CLPSA_X_SENTENCE)
#undef CLPSA_X_SENTENCE
    }
    return "unknown status";
}
