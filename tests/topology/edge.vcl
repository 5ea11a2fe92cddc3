vcl 4.1;
import xkey;
backend origin { .host = "%(host)s"; .port = "%(port)s"; }
acl purgers { "127.0.0.1"; %(purgers)s}
sub vcl_recv {
  if (req.method == "PURGE") {
    if (client.ip !~ purgers) { return (synth(403, "Forbidden")); }
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
sub vcl_deliver {
  if (obj.hits > 0) { set resp.http.X-Edge = "hit"; } else { set resp.http.X-Edge = "miss"; }
}
