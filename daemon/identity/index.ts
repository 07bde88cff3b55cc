/** Keys, CSRs, SPIFFE X.509-SVID rules, the certificate manager, the trust bundle. Issue 3. */

export {};
