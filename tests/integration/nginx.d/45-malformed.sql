-- 45-malformed: an allowed host on a port nothing listens on (a 502 whose
-- error log line quotes the request).
SELECT turnpolicy.allow_host('acs.test', 'edge.skype.com:' || :'closed_port');
