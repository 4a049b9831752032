// Battery reports from a student tablet, where the browser exposes the Battery
// Status API (Chromium-based browsers do; others simply skip). The hub uses the
// level to plan which cart slots charge first. Start with startBatteryReports().

import { api, ApiError } from "./api.js";

const EVERY_MS = 5 * 60 * 1000;

export async function startBatteryReports() {
  if (!navigator.getBattery) return false;
  let battery;
  try {
    battery = await navigator.getBattery();
  } catch {
    return false;
  }
  let stopped = false;
  async function report() {
    if (stopped) return;
    try {
      await api("POST", "/tablets/battery", { json: { level: Math.round(battery.level * 100) / 100, charging: !!battery.charging } });
    } catch (err) {
      // Not in the fleet inventory (404) or not enrolled (401): nothing to report to.
      if (err instanceof ApiError && (err.status === 404 || err.status === 401)) stopped = true;
    }
  }
  battery.addEventListener("levelchange", report);
  battery.addEventListener("chargingchange", report);
  setInterval(report, EVERY_MS);
  await report();
  return true;
}
