// /api/docs: "Try it out" sends the dashboard session's bearer token (local sign-in keeps it in
// localStorage "vz.session"; Supabase Auth in "sb-<ref>-auth-token"). Runs after flask-smorest's
// inline script has defined the global `config`, before SwaggerUIBundle reads it on load.
"use strict";
(function () {
  function token() {
    try {
      const local = JSON.parse(localStorage.getItem("vz.session") || "null");
      if (local && local.access_token) return local.access_token;
      for (let i = 0; i < localStorage.length; i += 1) {
        const key = localStorage.key(i);
        if (/^sb-.*-auth-token$/.test(key)) {
          const session = JSON.parse(localStorage.getItem(key));
          if (session && session.access_token) return session.access_token;
        }
      }
    } catch (e) { /* no session */ }
    return null;
  }
  if (typeof config !== "object") return;
  config.requestInterceptor = function (req) {
    const t = token();
    if (t && !req.headers.Authorization) req.headers.Authorization = "Bearer " + t;
    return req;
  };
})();
