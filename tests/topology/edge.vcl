vcl 4.1;
import std;
import var;
import xkey;
backend origin { .host = "%(host)s"; .port = "%(port)s"; }
acl purgers { "127.0.0.1"; %(purgers)s}
sub vcl_recv {
  if (req.method == "PURGE") {
    if (client.ip !~ purgers) { return (synth(403, "Forbidden")); }
    # A fetch already under way may carry what this purge removes: see vcl_backend_response.
    # Purges run in parallel threads: keep the latest (a thread may set it a little late).
    if (std.time2real(now, 0.0) > std.real(var.global_get("purged"), 0.0)) {
      var.global_set("purged", "" + std.time2real(now, 0.0));
    }
    if (req.http.xkey-purge) {
      set req.http.n-gone = xkey.purge(req.http.xkey-purge);
    } elsif (req.http.xkey-softpurge) {
      set req.http.n-gone = xkey.softpurge(req.http.xkey-softpurge);
    } else {
      return (synth(400, "No keys"));
    }
    return (synth(200, "Purged " + req.http.n-gone));
  }
}
sub vcl_backend_response {
  # Only what names its surrogate keys is kept: nothing else could be purged (a 404, a list
  # the representation cache did not serve, a private answer).
  if (!beresp.http.xkey) {
    set beresp.uncacheable = true;
    set beresp.ttl = 0s;
    return (deliver);
  }
  # Began before the last purge: it may have read what that purge's write changed, its
  # answer arriving after the purge. Served, not kept; requests waiting on it fetch anew.
  if (std.time2real(bereq.time, 0.0) <= std.real(var.global_get("purged"), 0.0)) {
    set beresp.uncacheable = true;
    set beresp.ttl = 0s;
  }
}
sub vcl_deliver {
  if (obj.hits > 0) { set resp.http.X-Edge = "hit"; } else { set resp.http.X-Edge = "miss"; }
}
