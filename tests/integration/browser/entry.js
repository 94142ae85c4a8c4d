// The page's copy of the ACS Calling Web SDK, bundled by esbuild
// (tests/integration/nginx.d/70-browser.sh) into one script: window.acs.
import { CallClient } from "@azure/communication-calling";
import { AzureCommunicationTokenCredential } from "@azure/communication-common";

window.acs = { CallClient, AzureCommunicationTokenCredential };
