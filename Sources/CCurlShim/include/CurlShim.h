// Typed, non-variadic wrappers around libcurl's variadic functions, which Swift cannot call.
// One wrapper per argument type curl_easy_setopt / curl_easy_getinfo accept.
#ifndef BACKTESTD_CURL_SHIM_H
#define BACKTESTD_CURL_SHIM_H

#include <curl/curl.h>

CURLcode curlshim_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode curlshim_setopt_string(CURL *handle, CURLoption option, const char *value);
CURLcode curlshim_setopt_pointer(CURL *handle, CURLoption option, void *value);
CURLcode curlshim_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value);
CURLcode curlshim_setopt_write_function(CURL *handle, curl_write_callback callback);
CURLcode curlshim_setopt_header_function(CURL *handle, curl_write_callback callback);

CURLcode curlshim_getinfo_long(CURL *handle, CURLINFO info, long *value);
CURLcode curlshim_getinfo_double(CURL *handle, CURLINFO info, double *value);

#endif
