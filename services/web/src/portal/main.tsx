import { render } from 'preact';
import '../shared/styles.css';
import { PortalApp } from './PortalApp';

render(<PortalApp />, document.getElementById('app')!);
