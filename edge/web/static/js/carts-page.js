// The cart page (/carts) for teachers and admins: mount the cart panel only once
// a staff session is known, so the page never polls the hub while signed out.

import { mountCarts } from "./carts.js";
import { $, sessionInfo, startPage } from "./ui.js";

async function main() {
  await startPage();
  const info = await sessionInfo().catch(() => null);
  const user = info && info.user;
  if (!user || (user.role !== "teacher" && user.role !== "admin")) {
    $("#login-needed").hidden = false;
    return;
  }
  if (user.role === "admin") $("#back").setAttribute("href", "/admin");
  mountCarts($("#carts-root"), { admin: user.role === "admin" });
}

main();
