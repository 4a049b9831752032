// The landing page: send each device where it belongs (a signed-in person to their
// page, an enrolled tablet to the sign-in screen); otherwise offer the choices.

import { api } from "./api.js";
import { $, sessionInfo, showScreen, startPage } from "./ui.js";

const HOME = { student: "/student", teacher: "/teacher", admin: "/admin" };

async function main() {
  await startPage();
  const info = await sessionInfo().catch(() => null);
  const me = info && info.user;
  if (me && HOME[me.role]) return location.replace(HOME[me.role]);
  if (info && info.device && info.device.kind === "student") return location.replace("/student");
  try {
    const hub = await api("GET", "/hub");
    $("#hub-name").textContent = [hub.school, hub.room].filter(Boolean).join(" · ") || hub.name;
  } catch {
    // The name is a nicety; the choices work without it.
  }
  showScreen("screen-choose");
  return undefined;
}

main();
