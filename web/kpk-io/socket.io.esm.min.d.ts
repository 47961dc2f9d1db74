// Types of socket.io.esm.min.js, the unchanged copy of socket.io-client's published browser
// module: socket.io-client's own (a dependency of this package).
export { io } from "socket.io-client";
