// kpk-io: the Admin UI's login form offers the server that serves it (its own default is empty).
if (!localStorage.getItem("server_url")) localStorage.setItem("server_url", location.origin);
